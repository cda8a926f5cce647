//! contact-sync binary: wiring only. Exit codes: 0 after a graceful stop, 64 for an invalid
//! configuration or a field mapping that does not fit the Spotler account, 1 otherwise.

use std::process::ExitCode;

use contact_sync::Config;
use settings::Env;

/// jemalloc instead of glibc malloc: tasks and lapin's I/O threads free each other's
/// allocations, which in glibc contends on arena locks (README "Benchmark").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    mq::worker::main(
        "contact-sync",
        Config::from_strings(&Env),
        |c| &c.common,
        |config, registry, health| async move {
            contact_sync::start(config, &registry, health, mq::consumer::shutdown_signal()).await
        },
    )
    .await
}
