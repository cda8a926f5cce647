//! `switchyard topology export`: the broker topology as a RabbitMQ definitions file
//! (`mq::definitions`), for `rabbitmqctl import_definitions`, the management UI or the
//! `load_definitions` setting. `deploy/rabbitmq/definitions.json` is this command's output for
//! every known worker with the default tiers and delivery limit:
//!
//! ```text
//! switchyard topology export --namespace '' --out deploy/rabbitmq/definitions.json
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use mq::Names;
use settings::{MqConfig, Strings};

use crate::workers;

/// Arguments of `topology export`.
#[derive(Debug, Args)]
#[command(
    after_help = "Retry tiers and the delivery limit come from SWITCHYARD_RETRY_TIERS and \
                        SWITCHYARD_DELIVERY_LIMIT, as in the workers; names from SWITCHYARD_NAMESPACE or \
                        --namespace. Regenerate the committed file with:\n  switchyard topology export \
                        --namespace '' --out deploy/rabbitmq/definitions.json"
)]
pub(crate) struct ExportArgs {
    /// A worker (repeatable); default: every known worker.
    #[arg(long = "worker", value_name = "NAME")]
    workers: Vec<String>,
    /// Write the definitions to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// The definitions text for the selected workers with the names and tiers `strings` give.
pub(crate) fn definitions_text(worker_names: &[String], strings: &dyn Strings) -> anyhow::Result<String> {
    let selected = workers::select(worker_names)?;
    let topologies = workers::topologies(strings, &selected)?;
    let mq_config = MqConfig::from_strings(strings)?;
    Ok(mq::definitions::definitions_text(
        &Names::new(&mq_config.namespace),
        &topologies,
    ))
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing the definitions to {}", path.display()))
}

/// Runs `switchyard topology export` (no broker needed).
pub(crate) fn run(args: &ExportArgs, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let text = definitions_text(&args.workers, strings)?;
    match &args.out {
        Some(path) => {
            write_file(path, &text)?;
            writeln!(out, "wrote {}", path.display())?;
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::Value;

    use super::*;

    /// The committed file, checked against what the code generates today.
    const COMMITTED: &str = include_str!("../../deploy/rabbitmq/definitions.json");

    #[test]
    fn committed_definitions_match_the_code() {
        let env: HashMap<&str, &str> = HashMap::new();
        let generated = definitions_text(&[], &env).unwrap_or_default();
        assert!(
            generated == COMMITTED,
            "deploy/rabbitmq/definitions.json is out of date; regenerate it with \
             `cargo run -p switchyard-cli -- topology export --namespace '' --out deploy/rabbitmq/definitions.json`"
        );
    }

    #[test]
    fn export_follows_namespace_and_worker_selection() {
        let env: HashMap<&str, &str> = [("SWITCHYARD_NAMESPACE", "acme")].into();
        let text = definitions_text(&["contact-sync".to_owned()], &env).unwrap_or_default();
        let doc: Value = serde_json::from_str(&text).unwrap_or_default();
        let queues: Vec<&str> = doc["queues"]
            .as_array()
            .map(|q| q.iter().filter_map(|q| q["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(queues.contains(&"acme.contact-sync"), "{queues:?}");
        assert!(queues.iter().all(|q| q.starts_with("acme.")), "{queues:?}");
    }

    #[test]
    fn unknown_worker_is_a_usage_error() {
        let env: HashMap<&str, &str> = HashMap::new();
        let error = definitions_text(&["nope".to_owned()], &env).err();
        assert!(error.as_ref().is_some_and(crate::support::is_usage));
    }

    #[test]
    fn writes_to_the_out_file() {
        let path = std::env::temp_dir().join(format!("switchyard-export-{}.json", uuid::Uuid::new_v4().simple()));
        let env: HashMap<&str, &str> = HashMap::new();
        let args = ExportArgs {
            workers: vec![],
            out: Some(path.clone()),
        };
        let mut out = Vec::new();
        let code = run(&args, &env, &mut out).ok();
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        let _removed = std::fs::remove_file(&path);
        assert_eq!(code, Some(ExitCode::SUCCESS));
        assert_eq!(written, COMMITTED);
        assert!(String::from_utf8_lossy(&out).starts_with("wrote "));
    }
}
