//! inbound binary: wiring only.

use std::process::ExitCode;

use inbound::Config;
use settings::Env;

/// jemalloc instead of glibc malloc: tasks and lapin's I/O threads free each other's
/// allocations, which in glibc contends on arena locks (README "Benchmark").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
