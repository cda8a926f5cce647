//! `switchyard-bench` (`make bench`): throughput, latency, memory and quota precision of the
//! workers, each worker figure a ratio to a floor measured in the same run, because machines
//! are noisy and only ratios compare across runs.
//!
//! Every scenario runs in this process tree against the local RabbitMQ, in a namespace of its
//! own that is deleted afterwards, with the provider sandbox in this process and the workers as
//! their release binaries. Output: a table on stdout, `target/bench/summary.json` (DESIGN.md
//! section 10) and `target/bench/throughput.svg`.
//!
//! # Layout
//! - [`config`]: the `BENCH_*` settings and the sizes of a full and a quick run.
//! - [`amqp`]: publishing with pipelined confirms, the result observer, queue inspection.
//! - [`floor`]: the no-op lapin relay the worker figures are divided by.
//! - [`process`]: worker binaries as child processes and their memory.
//! - [`harness`]: namespaces, worker environments, message bodies, draining a backlog.
//! - [`throughput`], [`latency`], [`quota`]: the scenarios.
//! - [`series`], [`summary`], [`plot`]: figures, `summary.json` and the table, the SVG.

mod amqp;
mod config;
mod floor;
mod harness;
mod latency;
mod plot;
mod process;
mod quota;
mod series;
mod summary;
mod throughput;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use settings::Env;
use switchyard_sandbox::SandboxConfig;

use crate::config::{Config, Scenario};
use crate::harness::Bench;
use crate::series::Series;
use crate::summary::Summary;

/// jemalloc instead of glibc malloc: tasks and lapin's I/O threads free each other's
/// allocations, which in glibc contends on arena locks (README "Benchmark").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .unwrap_or_default();
    let config = match Config::from_strings(&Env, exe_dir) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("switchyard-bench: invalid configuration: {error}");
            return ExitCode::from(settings::EXIT_USAGE);
        }
    };
    match run(config).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("switchyard-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `scenario` is the last selected worker throughput scenario of a run that measures
/// the floor: the floor is measured again right after it.
fn last_throughput_scenario(config: &Config, scenario: Scenario) -> bool {
    config.runs(Scenario::Floor)
        && match scenario {
            Scenario::Workers => true,
            Scenario::Worker => !config.runs(Scenario::Workers),
            _ => false,
        }
}

/// Runs the selected scenarios and writes the outputs. `Ok(false)` when a scenario failed (the
/// figures of the others are still written).
async fn run(config: Config) -> Result<bool> {
    std::fs::create_dir_all(config.out.join("logs"))
        .with_context(|| format!("cannot create {}", config.out.display()))?;
    let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
        .await
        .context("cannot start the sandbox")?;
    println!(
        "switchyard-bench ({} run): sandbox at {}, outputs in {}",
        if config.quick { "quick" } else { "full" },
        sandbox.base_url(),
        config.out.display()
    );
    let bench = Bench { config, sandbox };
    let mut summary = Summary::default();
    let mut plots: Vec<Series> = Vec::new();
    let mut all_ran = true;
    for scenario in Scenario::ALL {
        if !bench.config.runs(scenario) {
            continue;
        }
        let outcome = match scenario {
            Scenario::Floor => throughput::floor(&bench, &mut summary, &mut plots).await,
            Scenario::Worker => throughput::worker(&bench, &mut summary, &mut plots).await,
            Scenario::Workers => workers::each(&bench, &mut summary, &mut plots).await,
            Scenario::Concurrency => throughput::concurrency(&bench, &mut summary, &mut plots).await,
            Scenario::Latency => latency::latency(&bench, &mut summary, &mut plots).await,
            Scenario::Memory => throughput::memory(&bench, &mut summary, &mut plots).await,
            Scenario::Quota => quota::quota(&bench, &mut summary, &mut plots).await,
        };
        if let Err(error) = outcome {
            eprintln!("scenario {} failed: {error:#}", scenario.as_str());
            all_ran = false;
        }
        if last_throughput_scenario(&bench.config, scenario)
            && let Err(error) = throughput::floor_again(&bench, &mut summary, &mut plots).await
        {
            eprintln!("scenario floor (again) failed: {error:#}");
            all_ran = false;
        }
    }
    throughput::ratios(&mut summary);
    let summary_path = bench.config.out.join("summary.json");
    summary.write(&summary_path)?;
    let plot_path = bench.config.out.join("throughput.svg");
    if !plots.is_empty() {
        plot::draw(&plot_path, "Switchyard bench: throughput over time", &plots)?;
    }
    println!();
    print!("{}", summary.table());
    println!();
    println!("wrote {} and {}", summary_path.display(), plot_path.display());
    Ok(all_ran)
}
