//! `switchyard`: the admin CLI. Parses the command line, runs one command, maps the outcome to
//! an exit code (0 ok, 1 failure, 64 usage or configuration error).
//!
//! # Layout
//! - [`support`]: the usage error, the `--namespace` overlay, table formatting.
//! - [`workers`]: the table of known workers and their routing keys.
//! - [`message`]: reading message files: envelopes and type inference.
//! - [`topology`], [`publish`], [`validate`], [`dlq`], [`status`], [`demo`], [`batch`],
//!   [`import`]: one module per command.
//! - [`prom`]: parsing Prometheus text (for the demo).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use settings::{EXIT_USAGE, Env, Strings};

mod batch;
mod demo;
mod dlq;
mod export;
mod import;
mod message;
mod prom;
mod publish;
mod status;
mod support;
mod topology;
mod validate;
mod workers;

/// Admin CLI for Switchyard: broker topology, publishing, validation, dead letters, queue
/// depths and the demo.
///
/// The broker comes from AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f) and the
/// name prefix from SWITCHYARD_NAMESPACE (or --namespace). Retry tiers and the delivery limit
/// come from the same variables the workers read (SWITCHYARD_RETRY_TIERS,
/// SWITCHYARD_DELIVERY_LIMIT). Exit codes: 0 ok, 1 failure, 64 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about)]
struct Cli {
    /// Prefix for every exchange and queue name; overrides SWITCHYARD_NAMESPACE (`''` for none).
    #[arg(long, global = true, value_name = "NAMESPACE", value_parser = support::parse_namespace)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Declare or verify the broker topology (exchanges, queues, bindings).
    #[command(subcommand)]
    Topology(topology::TopologyCommand),
    /// Publish JSON messages to the main exchange, with publisher confirms.
    Publish(publish::PublishArgs),
    /// Validate message files against the bundled JSON Schemas (no broker needed).
    Validate(validate::ValidateArgs),
    /// Inspect, replay or purge a worker's dead letters.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Show queue depths per worker (work queue, retry tiers, dead letters) and unroutable.
    Status(status::StatusArgs),
    /// Publish the bundled samples and wait until the workers have handled them (`make run`).
    Demo(demo::DemoArgs),
    /// Batch flows: a CSV request file in, a CSV response file out.
    #[command(subcommand)]
    Batch(batch::BatchCommand),
    /// Import a full customer export (CSV or JSONL) as contact.changed messages.
    #[command(subcommand)]
    Import(import::ImportCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _printed = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli, &Env).await {
        Ok(code) => code,
        Err(error) if support::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchyard: {error:#}");
            if support::is_usage(&error) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli, env: &dyn Strings) -> anyhow::Result<ExitCode> {
    let strings = support::WithNamespace::new(env, cli.namespace.as_deref());
    let mut out = std::io::stdout();
    match cli.command {
        Command::Topology(command) => topology::run(command, &strings, &mut out).await,
        Command::Publish(args) => publish::run(args, &strings, &mut out).await,
        Command::Validate(args) => validate::run(&args, &mut out),
        Command::Dlq(command) => dlq::run(command, &strings, &mut out).await,
        Command::Status(args) => status::run(&args, &strings, &mut out).await,
        Command::Demo(args) => demo::run(args, &strings, &mut out).await,
        Command::Batch(command) => batch::run(command, &strings, &mut out).await,
        Command::Import(command) => import::run(command, &strings, &mut out).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
