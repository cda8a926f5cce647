//! inbound binary: wiring only.

use std::process::ExitCode;

use inbound::Config;
use settings::Env;

#[tokio::main]
async fn main() -> ExitCode {
    mq::worker::main(
        "inbound",
        Config::from_strings(&Env),
        |c| &c.common,
        |config, registry, health| async move {
            inbound::run(config, &registry, health, mq::consumer::shutdown_signal()).await
        },
    )
    .await
}
