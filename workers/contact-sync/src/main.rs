//! contact-sync binary: configuration, telemetry, run, exit code.

use std::process::ExitCode;

use contact_sync::Config;
use prometheus::Registry;
use settings::{EXIT_USAGE, Env};
use telemetry::Health;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_strings(&Env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("contact-sync: invalid configuration: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    telemetry::init_logging(&config.log);
    let registry = Registry::new();
    let health = Health::new();
    match telemetry::serve(config.metrics_addr, registry.clone(), health.clone()).await {
        Ok(addr) => tracing::info!(%addr, "Serving /metrics, /healthz and /readyz."),
        Err(error) => {
            tracing::error!(%error, addr = %config.metrics_addr, "Cannot bind METRICS_ADDR.");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    match contact_sync::run(config, &registry, health, mq::consumer::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "Worker stopped with an error.");
            ExitCode::FAILURE
        }
    }
}
