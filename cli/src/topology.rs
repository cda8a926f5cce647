//! `switchyard topology declare|verify|export`: the broker topology of DESIGN.md section 3.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use settings::Strings;

use crate::export::{self, ExportArgs};
use crate::support::connect;
use crate::workers;

/// `switchyard topology` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopologyCommand {
    /// Declare the shared exchanges and the workers' queues and bindings (idempotent).
    Declare(WorkerArgs),
    /// Compare the broker with the expected topology without changing it; exit 1 on drift.
    ///
    /// Reports missing exchanges and queues and queues whose arguments differ (queue arguments
    /// cannot change in place: see the README's "Upgrading").
    Verify(WorkerArgs),
    /// Print the topology as a RabbitMQ definitions file (no broker needed).
    ///
    /// For `rabbitmqctl import_definitions`, the management UI or the `load_definitions`
    /// setting; `deploy/rabbitmq/definitions.json` is its output for every known worker.
    Export(ExportArgs),
}

/// The workers to act on.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// A worker (repeatable); default: every known worker.
    #[arg(long = "worker", value_name = "NAME")]
    workers: Vec<String>,
}

/// Runs a `switchyard topology` subcommand.
pub(crate) async fn run(
    command: TopologyCommand,
    strings: &dyn Strings,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match command {
        TopologyCommand::Declare(args) => declare(&args, strings, out).await,
        TopologyCommand::Verify(args) => verify(&args, strings, out).await,
        TopologyCommand::Export(args) => export::run(&args, strings, out),
    }
}

async fn declare(args: &WorkerArgs, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let selected = workers::select(&args.workers)?;
    let topologies = workers::topologies(strings, &selected)?;
    let admin = connect(strings).await?;
    let n_entities = mq::topology::entities(admin.names(), &topologies).len();
    let declared = admin.declare(&topologies).await;
    admin.close().await;
    declared?;
    writeln!(out, "declared {n_entities} entities for {}", worker_names(&selected))?;
    Ok(ExitCode::SUCCESS)
}

async fn verify(args: &WorkerArgs, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let selected = workers::select(&args.workers)?;
    let topologies = workers::topologies(strings, &selected)?;
    let admin = connect(strings).await?;
    let n_entities = mq::topology::entities(admin.names(), &topologies).len();
    let verified = admin.verify(&topologies).await;
    admin.close().await;
    let drift = verified?;
    for d in &drift {
        writeln!(out, "drift: {}: {}", d.entity, d.problem)?;
    }
    if drift.is_empty() {
        writeln!(
            out,
            "topology matches ({n_entities} entities for {})",
            worker_names(&selected)
        )?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "{} drift(s) found", drift.len())?;
        Ok(ExitCode::FAILURE)
    }
}

fn worker_names(selected: &[&workers::KnownWorker]) -> String {
    selected.iter().map(|w| w.name).collect::<Vec<_>>().join(", ")
}
