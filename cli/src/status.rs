//! `switchyard status`: queue depths per worker (work queue, delay tiers, dead letters) and of
//! `switchyard.unroutable`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use mq::{Names, WorkerTopology};
use settings::Strings;

use crate::support::{connect, table};
use crate::workers;

/// Arguments of `switchyard status`.
#[derive(Debug, Args)]
#[command(after_help = "Depth is the number of messages ready in the queue; a queue that does not exist shows 0.")]
pub(crate) struct StatusArgs {
    /// A worker (repeatable); default: every known worker.
    #[arg(long = "worker", value_name = "NAME")]
    workers: Vec<String>,
}

/// The queues to show, as (worker column, queue name), in display order.
pub(crate) fn queues(names: &Names, topologies: &[WorkerTopology]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for topology in topologies {
        let worker = &topology.worker;
        out.push((worker.clone(), names.work_queue(worker)));
        for tier in &topology.tiers {
            out.push((worker.clone(), names.tier_queue(worker, *tier)));
        }
        out.push((worker.clone(), names.dead_queue(worker)));
    }
    out.push(("-".to_owned(), names.unroutable()));
    out
}

/// Runs `switchyard status`.
pub(crate) async fn run(args: &StatusArgs, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let selected = workers::select(&args.workers)?;
    let topologies = workers::topologies(strings, &selected)?;
    let admin = connect(strings).await?;
    let mut rows = Vec::new();
    for (worker, queue) in queues(admin.names(), &topologies) {
        match admin.queue_depth(&queue).await {
            Ok(depth) => rows.push(vec![worker, queue, depth.to_string()]),
            Err(error) => {
                admin.close().await;
                return Err(anyhow::Error::new(error).context(format!("cannot read the depth of `{queue}`")));
            }
        }
    }
    admin.close().await;
    write!(out, "{}", table(&["worker", "queue", "messages"], &rows))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn status_lists_work_tiers_dead_then_unroutable() {
        let topology = WorkerTopology {
            worker: "contact-sync".into(),
            routing_keys: vec![],
            tiers: vec![Duration::from_secs(1), Duration::from_secs(60)],
            delivery_limit: 10,
        };
        let queues: Vec<String> = queues(&Names::new("ns"), &[topology])
            .into_iter()
            .map(|(_, q)| q)
            .collect();
        assert_eq!(
            queues,
            [
                "ns.contact-sync",
                "ns.contact-sync.retry.1s",
                "ns.contact-sync.retry.1m",
                "ns.contact-sync.dead",
                "ns.switchyard.unroutable"
            ]
        );
    }
}
