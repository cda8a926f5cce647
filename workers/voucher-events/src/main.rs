//! voucher-events binary: wiring only.

use std::process::ExitCode;

use settings::Env;
use voucher_events::Config;

#[tokio::main]
async fn main() -> ExitCode {
    mq::worker::main(
        "voucher-events",
        Config::from_strings(&Env),
        |c| &c.common,
        |config, registry, health| async move {
            voucher_events::run(config, &registry, health, mq::consumer::shutdown_signal()).await
        },
    )
    .await
}
