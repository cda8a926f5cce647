//! recommendations binary: wiring only.

use std::process::ExitCode;

use recommendations::Config;
use settings::Env;

#[tokio::main]
async fn main() -> ExitCode {
    mq::worker::main(
        "recommendations",
        Config::from_strings(&Env),
        |c| &c.common,
        |config, registry, health| async move {
            recommendations::run(config, &registry, health, mq::consumer::shutdown_signal()).await
        },
    )
    .await
}
