//! contact-sync binary: wiring only.

use std::process::ExitCode;

use contact_sync::Config;
use settings::Env;

#[tokio::main]
async fn main() -> ExitCode {
    mq::worker::main(
        "contact-sync",
        Config::from_strings(&Env),
        |c| &c.common,
        |config, registry, health| async move {
            contact_sync::run(config, &registry, health, mq::consumer::shutdown_signal()).await
        },
    )
    .await
}
