//! loyalty-events binary: wiring only.

use std::process::ExitCode;

use loyalty_events::Config;
use settings::Env;

#[tokio::main]
async fn main() -> ExitCode {
    mq::worker::main(
        "loyalty-events",
        Config::from_strings(&Env),
        |c| &c.common,
        |config, registry, health| async move {
            loyalty_events::run(config, &registry, health, mq::consumer::shutdown_signal()).await
        },
    )
    .await
}
