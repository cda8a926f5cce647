//! `switchyard demo`: publishes the bundled samples, waits until the workers have accounted for
//! every one of them, and prints what happened (`make run`).
//!
//! Accounting: before publishing, the sum over the workers' `/metrics` of
//! `switchyard_messages_total{outcome="ok"|"dead_lettered"}` and the depth of
//! `switchyard.unroutable` are recorded. The demo is done when the first has grown by the number
//! of deliveries the published messages imply (a message counts once per known worker bound for
//! its routing key) and the second by the number of messages no known worker is bound for.
//!
//! Results (`contact.synced`, ...) are published by workers to the main exchange; with no queue
//! bound for them they would land in `switchyard.unroutable` and spoil the count, so the demo
//! binds an observer queue `demo.results` for every result type and drains it at the end.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use messages::catalog::{CATALOG, Direction};
use mq::MqError;
use mq::admin::Admin;
use serde::Deserialize;
use serde_json::Value;
use settings::Strings;
use tokio::time::Instant;

use crate::dlq::letters_table;
use crate::message::key_from_file_name;
use crate::prom;
use crate::support::{connect, table, usage};
use crate::validate::schemas;
use crate::workers::{self, KNOWN_WORKERS, KnownWorker};

/// How often the demo checks progress (and prints a line).
const POLL_EVERY: Duration = Duration::from_secs(2);
/// Dead letters of this run shown per worker at the end.
const DEAD_LETTERS_SHOWN: usize = 10;
/// The observer queue for results (under the namespace).
const RESULTS_QUEUE: &str = "demo.results";

/// Arguments of `switchyard demo`.
#[derive(Debug, Args)]
#[command(
    after_help = "DIR holds <type>/*.json (valid bodies, validated before publishing), optionally \
    invalid/<type>.<name>.json (published as they are to <type>) and unroutable/<routing-key>.<name>.json \
    (published as they are to that routing key). Message ids are demo-<run-id>-<n>. Exits 0 when every \
    message was accounted for, 1 on timeout."
)]
pub(crate) struct DemoArgs {
    /// The samples directory.
    #[arg(long, value_name = "DIR")]
    samples: PathBuf,
    /// Base URL of switchyard-sandbox (its /_sandbox/calls log is read).
    #[arg(long, value_name = "URL", value_parser = parse_http_url)]
    sandbox: String,
    /// A worker's /metrics URL (repeatable, or several values after one flag).
    #[arg(long, value_name = "URL", required = true, num_args = 1.., value_parser = parse_http_url)]
    metrics: Vec<String>,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    timeout: u64,
}

fn parse_http_url(raw: &str) -> Result<String, String> {
    settings::parse_base_url(raw).map(|url| url.to_string().trim_end_matches('/').to_owned())
}

/// How a sample is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleKind {
    /// Valid: validated against its schema first.
    Valid,
    /// Deliberately invalid: published as it is to its type.
    Invalid,
    /// Deliberately unroutable: published as it is to a routing key no queue is bound for.
    Unroutable,
}

/// One sample file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// How it is published.
    pub(crate) kind: SampleKind,
    /// The routing key (= type) it is published with.
    pub(crate) routing_key: String,
    /// The file.
    pub(crate) path: PathBuf,
    /// The body.
    pub(crate) body: Vec<u8>,
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        entries.push(entry.with_context(|| format!("cannot read {}", dir.display()))?.path());
    }
    entries.sort();
    Ok(entries)
}

fn is_json(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "json")
}

/// Every sample under `dir`: valid ones by type directory, then `invalid/`, then `unroutable/`,
/// each sorted by file name.
pub(crate) fn load_samples(dir: &Path) -> anyhow::Result<Vec<Sample>> {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    let mut unroutable = Vec::new();
    for sub in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let dir_name = sub.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        for path in sorted_entries(&sub)?.into_iter().filter(|p| is_json(p)) {
            let body = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let (kind, routing_key) = match dir_name.as_str() {
                "invalid" | "unroutable" => {
                    let key = key_from_file_name(file_name)
                        .ok_or_else(|| usage(format!("{}: name it <routing-key>.<anything>.json", path.display())))?;
                    let kind = if dir_name == "invalid" {
                        SampleKind::Invalid
                    } else {
                        SampleKind::Unroutable
                    };
                    (kind, key.to_owned())
                }
                _ => (SampleKind::Valid, dir_name.clone()),
            };
            let sample = Sample {
                kind,
                routing_key,
                path: path.clone(),
                body,
            };
            match kind {
                SampleKind::Valid => valid.push(sample),
                SampleKind::Invalid => invalid.push(sample),
                SampleKind::Unroutable => unroutable.push(sample),
            }
        }
    }
    valid.extend(invalid);
    valid.extend(unroutable);
    Ok(valid)
}

/// What the published samples should produce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Growth of `switchyard_messages_total{outcome=ok|dead_lettered}` summed over workers.
    pub(crate) handled: u64,
    /// Growth of the `switchyard.unroutable` depth.
    pub(crate) unroutable: u64,
}

/// The expectation for `samples` given the workers' bindings.
pub(crate) fn expected(samples: &[Sample], workers: &[KnownWorker]) -> Expected {
    let mut out = Expected::default();
    for sample in samples {
        match workers::consumers_of(workers, &sample.routing_key) {
            0 => out.unroutable += 1,
            n => out.handled += u64::try_from(n).unwrap_or(u64::MAX),
        }
    }
    out
}

/// The counters the demo follows, summed over every worker's `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counters {
    /// `switchyard_messages_total` with outcome `ok` or `dead_lettered`.
    pub(crate) handled: f64,
    /// `switchyard_retries_total`.
    pub(crate) retries: f64,
    /// `switchyard_dead_letters_total` by class.
    pub(crate) dead_letters: BTreeMap<String, f64>,
}

impl Counters {
    /// The counters in one `/metrics` text.
    pub(crate) fn from_text(text: &str) -> Self {
        let samples = prom::parse(text);
        let mut dead_letters = BTreeMap::new();
        for sample in samples.iter().filter(|s| s.name == "switchyard_dead_letters_total") {
            *dead_letters
                .entry(sample.label("class").unwrap_or("unknown").to_owned())
                .or_insert(0.0) += sample.value;
        }
        Self {
            handled: prom::sum(&samples, "switchyard_messages_total", |s| {
                matches!(s.label("outcome"), Some("ok" | "dead_lettered"))
            }),
            retries: prom::sum(&samples, "switchyard_retries_total", |_| true),
            dead_letters,
        }
    }

    /// Adds another worker's counters.
    pub(crate) fn add(&mut self, other: &Self) {
        self.handled += other.handled;
        self.retries += other.retries;
        for (class, value) in &other.dead_letters {
            *self.dead_letters.entry(class.clone()).or_insert(0.0) += value;
        }
    }
}

/// Counters plus the unroutable depth at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// Summed worker counters.
    pub(crate) counters: Counters,
    /// Messages in `switchyard.unroutable`.
    pub(crate) unroutable: u32,
}

/// How much a counter grew (a counter reset by a worker restart counts as no growth).
pub(crate) fn growth(before: f64, after: f64) -> u64 {
    let grown = (after - before).round();
    if grown.is_finite() && grown > 0.0 {
        grown as u64
    } else {
        0
    }
}

/// Where the demo stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Handled so far (counter growth).
    pub(crate) handled: u64,
    /// Unroutable so far (depth growth).
    pub(crate) unroutable: u64,
    /// What is expected.
    pub(crate) expected: Expected,
}

impl Progress {
    /// Progress between `start` and `now`.
    pub(crate) fn between(start: &Snapshot, now: &Snapshot, expected: Expected) -> Self {
        Self {
            handled: growth(start.counters.handled, now.counters.handled),
            unroutable: u64::from(now.unroutable.saturating_sub(start.unroutable)),
            expected,
        }
    }

    /// Whether every message is accounted for.
    pub(crate) fn complete(&self) -> bool {
        self.missing().is_empty()
    }

    /// What is still missing, one phrase per kind.
    pub(crate) fn missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.handled < self.expected.handled {
            out.push(format!(
                "{} of {} deliveries not handled yet (switchyard_messages_total with outcome ok or dead_lettered)",
                self.expected.handled - self.handled,
                self.expected.handled
            ));
        }
        if self.unroutable < self.expected.unroutable {
            out.push(format!(
                "{} of {} unroutable messages not in switchyard.unroutable",
                self.expected.unroutable - self.unroutable,
                self.expected.unroutable
            ));
        }
        out
    }

    /// The line printed while waiting.
    pub(crate) fn line(&self, waited: Duration) -> String {
        format!(
            "waiting {:>3}s: handled {}/{}, unroutable {}/{}",
            waited.as_secs(),
            self.handled.min(self.expected.handled),
            self.expected.handled,
            self.unroutable.min(self.expected.unroutable),
            self.expected.unroutable
        )
    }
}

/// One entry of the sandbox call log (the fields the demo needs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Call {
    /// Arrival order.
    pub(crate) seq: u64,
    /// Provider name.
    pub(crate) provider: String,
    /// Status answered (0: connection closed without an answer).
    pub(crate) status: u16,
}

/// Per provider, (2xx, other) answers among calls after `after_seq`.
pub(crate) fn tally_calls(calls: &[Call], after_seq: u64) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.seq > after_seq) {
        let entry = out.entry(call.provider.clone()).or_default();
        if (200..300).contains(&call.status) {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    out
}

/// Dead-letter growth by class, classes that did not grow left out.
pub(crate) fn dead_letter_growth(start: &Counters, end: &Counters) -> BTreeMap<String, u64> {
    end.dead_letters
        .iter()
        .map(|(class, value)| {
            (
                class.clone(),
                growth(start.dead_letters.get(class).copied().unwrap_or(0.0), *value),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// HTTP access to the sandbox and the workers' `/metrics`.
#[derive(Debug)]
struct Http {
    client: reqwest::Client,
    sandbox: String,
    metrics: Vec<String>,
}

impl Http {
    fn new(args: &DemoArgs) -> anyhow::Result<Self> {
        // reqwest is built without a bundled rustls provider; the process installs one.
        let _installed = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            sandbox: args.sandbox.clone(),
            metrics: args.metrics.clone(),
        })
    }

    async fn get(&self, url: &str) -> anyhow::Result<reqwest::Response> {
        self.client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("GET {url}"))
    }

    async fn counters(&self) -> anyhow::Result<Counters> {
        let mut total = Counters::default();
        for url in &self.metrics {
            let text = self
                .get(url)
                .await?
                .text()
                .await
                .with_context(|| format!("reading {url}"))?;
            total.add(&Counters::from_text(&text));
        }
        Ok(total)
    }

    async fn calls(&self) -> anyhow::Result<Vec<Call>> {
        let url = format!("{}/_sandbox/calls", self.sandbox);
        self.get(&url)
            .await?
            .json()
            .await
            .with_context(|| format!("decoding {url}"))
    }
}

async fn snapshot(http: &Http, admin: &Admin) -> anyhow::Result<Snapshot> {
    let counters = http.counters().await?;
    let unroutable = admin.queue_depth(&admin.names().unroutable()).await?;
    Ok(Snapshot { counters, unroutable })
}

/// Runs `switchyard demo`.
pub(crate) async fn run(args: DemoArgs, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let samples = load_samples(&args.samples)?;
    if samples.is_empty() {
        return Err(usage(format!("no samples under {}", args.samples.display())));
    }
    let schemas = schemas()?;
    let broken: Vec<String> = samples
        .iter()
        .filter(|s| s.kind == SampleKind::Valid)
        .filter_map(|s| {
            schemas
                .check(&s.routing_key, &s.body)
                .err()
                .map(|e| format!("{}: {e}", s.path.display()))
        })
        .collect();
    if !broken.is_empty() {
        anyhow::bail!("samples meant to be valid are not:\n{}", broken.join("\n"));
    }
    let all_workers = workers::select(&[])?;
    let topologies = workers::topologies(strings, &all_workers)?;
    let http = Http::new(&args)?;
    let admin = connect(strings).await?;
    let result = demo(&args, &samples, &topologies, &http, &admin, out).await;
    admin.close().await;
    result
}

async fn prepare_broker(admin: &Admin, topologies: &[mq::WorkerTopology], out: &mut dyn Write) -> anyhow::Result<()> {
    match admin.declare(topologies).await {
        Ok(()) => {}
        // The workers declared it first with their own settings; theirs is what counts.
        Err(MqError::TopologyMismatch(why)) => writeln!(out, "note: keeping the broker's topology ({why})")?,
        Err(error) => return Err(error.into()),
    }
    let result_types: Vec<&str> = CATALOG
        .iter()
        .filter(|s| s.direction == Direction::Result)
        .map(|s| s.kind)
        .collect();
    admin.declare_observer(RESULTS_QUEUE, &result_types).await?;
    Ok(())
}

async fn demo(
    args: &DemoArgs,
    samples: &[Sample],
    topologies: &[mq::WorkerTopology],
    http: &Http,
    admin: &Admin,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    prepare_broker(admin, topologies, out).await?;
    let expected = expected(samples, KNOWN_WORKERS);
    let start = snapshot(http, admin).await.context("recording the starting values")?;
    let start_seq = http
        .calls()
        .await
        .context("reading the sandbox call log")?
        .iter()
        .map(|c| c.seq)
        .max()
        .unwrap_or(0);

    let run_id = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(8)
        .collect::<String>();
    let prefix = format!("demo-{run_id}-");
    for (n, sample) in samples.iter().enumerate() {
        let message_id = format!("{prefix}{}", n + 1);
        admin
            .publish(&sample.routing_key, &message_id, None, &sample.body)
            .await
            .with_context(|| format!("publishing {}", sample.path.display()))?;
        let note = match sample.kind {
            SampleKind::Valid => "",
            SampleKind::Invalid => " (invalid on purpose)",
            SampleKind::Unroutable => " (unroutable on purpose)",
        };
        writeln!(out, "published {} {message_id}{note}", sample.routing_key)?;
    }

    let started = Instant::now();
    let deadline = Duration::from_secs(args.timeout);
    let mut last = start.clone();
    let progress = loop {
        match snapshot(http, admin).await {
            Ok(now) => last = now,
            Err(error) => writeln!(out, "waiting: {error:#}")?,
        }
        let progress = Progress::between(&start, &last, expected);
        if progress.complete() || started.elapsed() >= deadline {
            break progress;
        }
        writeln!(out, "{}", progress.line(started.elapsed()))?;
        tokio::time::sleep(POLL_EVERY).await;
    };

    let record = RunRecord {
        samples,
        start,
        start_seq,
        prefix,
    };
    summary(&record, &last, &progress, http, admin, out).await?;
    let missing = progress.missing();
    if missing.is_empty() {
        writeln!(out, "every message accounted for")?;
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("timed out after {}s: {}", args.timeout, missing.join("; "))
    }
}

/// What the summary needs to know about the run.
#[derive(Debug)]
struct RunRecord<'a> {
    /// Everything published.
    samples: &'a [Sample],
    /// Values before publishing.
    start: Snapshot,
    /// Highest sandbox call `seq` before publishing.
    start_seq: u64,
    /// `demo-<run-id>-`: every message id of the run starts with it.
    prefix: String,
}

async fn summary(
    record: &RunRecord<'_>,
    end: &Snapshot,
    progress: &Progress,
    http: &Http,
    admin: &Admin,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let RunRecord {
        samples,
        start,
        start_seq,
        prefix,
    } = record;
    let (start_seq, prefix) = (*start_seq, prefix.as_str());
    let count = |kind| samples.iter().filter(|s| s.kind == kind).count();
    writeln!(out, "\nsummary of demo run {}", prefix.trim_end_matches('-'))?;
    let mut rows = vec![
        vec![
            "published".to_owned(),
            format!(
                "{} valid, {} invalid, {} unroutable",
                count(SampleKind::Valid),
                count(SampleKind::Invalid),
                count(SampleKind::Unroutable)
            ),
        ],
        vec![
            "handled".to_owned(),
            format!("{} of {}", progress.handled, progress.expected.handled),
        ],
    ];
    match http.calls().await {
        Ok(calls) => {
            let tally = tally_calls(&calls, start_seq);
            if tally.is_empty() {
                rows.push(vec!["provider calls".to_owned(), "none".to_owned()]);
            }
            for (provider, (ok, failed)) in tally {
                rows.push(vec![
                    format!("{provider} calls"),
                    format!("{ok} answered 2xx, {failed} not 2xx"),
                ]);
            }
        }
        Err(error) => rows.push(vec!["provider calls".to_owned(), format!("unavailable: {error:#}")]),
    }
    rows.push(vec![
        "retried".to_owned(),
        growth(start.counters.retries, end.counters.retries).to_string(),
    ]);
    let dead = dead_letter_growth(&start.counters, &end.counters);
    let dead_text = if dead.is_empty() {
        "0".to_owned()
    } else {
        dead.iter()
            .map(|(class, n)| format!("{class} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(vec!["dead-lettered".to_owned(), dead_text]);
    rows.push(vec![
        "unroutable".to_owned(),
        format!("{} of {}", progress.unroutable, progress.expected.unroutable),
    ]);
    rows.push(vec!["results".to_owned(), results_text(admin, prefix).await]);
    write!(
        out,
        "{}",
        table(&["", ""], &rows)
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    )?;

    for worker in KNOWN_WORKERS {
        let letters = admin.dead_letters(worker.name, usize::MAX).await?;
        let mine: Vec<_> = letters
            .into_iter()
            .filter(|l| l.message_id.as_deref().is_some_and(|id| id.starts_with(prefix)))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let shown = &mine[mine.len().saturating_sub(DEAD_LETTERS_SHOWN)..];
        writeln!(
            out,
            "\ndead letters of this run in `{}` (last {} of {})",
            admin.names().dead_queue(worker.name),
            shown.len(),
            mine.len()
        )?;
        write!(out, "{}", letters_table(shown))?;
    }
    Ok(())
}

/// Drains the observer queue and describes this run's results, e.g.
/// `contact.synced: synced 8, failed 2`.
async fn results_text(admin: &Admin, prefix: &str) -> String {
    let drained = match admin.drain(&admin.names().work_queue(RESULTS_QUEUE), usize::MAX).await {
        Ok(drained) => drained,
        Err(error) => return format!("unavailable: {error}"),
    };
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (properties, body) in drained {
        let Ok(value) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        let source = value
            .get("source_message_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !source.starts_with(prefix) {
            continue;
        }
        let kind = properties
            .kind()
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |k| k.as_str().to_owned());
        let status = value
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("total")
            .to_owned();
        *counts.entry(kind).or_default().entry(status).or_default() += 1;
    }
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(kind, by_status)| {
            let statuses: Vec<String> = by_status.iter().map(|(status, n)| format!("{status} {n}")).collect();
            format!("{kind}: {}", statuses.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: SampleKind, routing_key: &str) -> Sample {
        Sample {
            kind,
            routing_key: routing_key.into(),
            path: PathBuf::from("x.json"),
            body: Vec::new(),
        }
    }

    fn snapshot(handled: f64, unroutable: u32) -> Snapshot {
        Snapshot {
            counters: Counters {
                handled,
                ..Counters::default()
            },
            unroutable,
        }
    }

    #[test]
    fn file_names_give_the_routing_key() {
        assert_eq!(
            key_from_file_name("contact.changed.bad-email.json"),
            Some("contact.changed")
        );
        assert_eq!(key_from_file_name("contact.chnaged.typo.json"), Some("contact.chnaged"));
        assert_eq!(key_from_file_name("nokey.json"), None);
        assert_eq!(key_from_file_name("a.b.txt"), None);
    }

    #[test]
    fn expectation_counts_deliveries_per_bound_worker_and_unbound_as_unroutable() {
        let samples = [
            sample(SampleKind::Valid, "contact.changed"),
            sample(SampleKind::Valid, "contact.deleted"),
            sample(SampleKind::Invalid, "contact.changed"),
            sample(SampleKind::Unroutable, "contact.chnaged"),
        ];
        assert_eq!(
            expected(&samples, KNOWN_WORKERS),
            Expected {
                handled: 3,
                unroutable: 1
            }
        );
        let two = [
            KnownWorker {
                name: "a",
                routing_keys: &["contact.*"],
            },
            KnownWorker {
                name: "b",
                routing_keys: &["contact.changed"],
            },
        ];
        assert_eq!(
            expected(&samples, &two),
            Expected {
                handled: 6,
                unroutable: 0
            }
        );
    }

    #[test]
    fn metrics_of_several_workers_are_summed() {
        let a = "switchyard_messages_total{worker=\"a\",type=\"t\",outcome=\"ok\"} 3\n\
                 switchyard_messages_total{worker=\"a\",type=\"t\",outcome=\"retried\"} 5\n\
                 switchyard_retries_total{worker=\"a\",tier=\"1s\"} 5\n\
                 switchyard_dead_letters_total{worker=\"a\",class=\"invalid\"} 1\n";
        let b = "switchyard_messages_total{worker=\"b\",type=\"unknown\",outcome=\"dead_lettered\"} 2\n\
                 switchyard_dead_letters_total{worker=\"b\",class=\"invalid\"} 2\n\
                 switchyard_dead_letters_total{worker=\"b\",class=\"permanent\"} 1\n";
        let mut total = Counters::from_text(a);
        total.add(&Counters::from_text(b));
        assert_eq!(total.handled, 5.0);
        assert_eq!(total.retries, 5.0);
        assert_eq!(total.dead_letters.get("invalid"), Some(&3.0));
        assert_eq!(total.dead_letters.get("permanent"), Some(&1.0));
    }

    #[test]
    fn progress_is_growth_since_the_start() {
        let expected = Expected {
            handled: 4,
            unroutable: 1,
        };
        let progress = Progress::between(&snapshot(10.0, 7), &snapshot(13.0, 8), expected);
        assert_eq!((progress.handled, progress.unroutable), (3, 1));
        assert!(!progress.complete());
        assert_eq!(progress.missing().len(), 1);
        assert!(
            progress.missing().iter().all(|m| m.starts_with("1 of 4 deliveries")),
            "{:?}",
            progress.missing()
        );
        assert_eq!(
            progress.line(Duration::from_secs(4)),
            "waiting   4s: handled 3/4, unroutable 1/1"
        );
        assert!(Progress::between(&snapshot(10.0, 7), &snapshot(14.0, 8), expected).complete());
    }

    #[test]
    fn extra_growth_from_other_traffic_still_completes() {
        let expected = Expected {
            handled: 2,
            unroutable: 1,
        };
        assert!(Progress::between(&snapshot(0.0, 0), &snapshot(9.0, 5), expected).complete());
    }

    #[test]
    fn worker_restart_resetting_counters_counts_as_no_growth() {
        assert_eq!(growth(10.0, 2.0), 0);
        assert_eq!(growth(2.0, 2.0), 0);
        assert_eq!(growth(2.0, f64::NAN), 0);
        let progress = Progress::between(
            &snapshot(10.0, 5),
            &snapshot(2.0, 3),
            Expected {
                handled: 1,
                unroutable: 1,
            },
        );
        assert_eq!(progress.missing().len(), 2);
    }

    #[test]
    fn calls_before_publishing_are_not_counted() {
        let call = |seq, provider: &str, status| Call {
            seq,
            provider: provider.into(),
            status,
        };
        let calls = [
            call(1, "spotler", 200),
            call(2, "spotler", 200),
            call(3, "spotler", 429),
            call(4, "ecomail", 201),
            call(5, "ecomail", 0),
        ];
        let tally = tally_calls(&calls, 1);
        assert_eq!(tally.get("spotler"), Some(&(1, 1)));
        assert_eq!(tally.get("ecomail"), Some(&(1, 1)));
    }

    #[test]
    fn dead_letter_growth_lists_classes_that_grew() {
        let start = Counters {
            dead_letters: [("invalid".to_owned(), 2.0)].into(),
            ..Counters::default()
        };
        let end = Counters {
            dead_letters: [
                ("invalid".to_owned(), 5.0),
                ("permanent".to_owned(), 1.0),
                ("poison".to_owned(), 0.0),
            ]
            .into(),
            ..Counters::default()
        };
        assert_eq!(
            dead_letter_growth(&start, &end),
            [("invalid".to_owned(), 3), ("permanent".to_owned(), 1)].into()
        );
    }

    #[test]
    fn samples_load_valid_then_invalid_then_unroutable() {
        let dir = std::env::temp_dir().join(format!("switchyard-cli-samples-{}", uuid::Uuid::new_v4().simple()));
        let files = [
            ("unroutable/contact.chnaged.typo.json", "{}"),
            ("invalid/contact.changed.bad-email.json", "{}"),
            ("contact.deleted/b.json", "{}"),
            ("contact.changed/a.json", "{}"),
            ("contact.changed/README.md", ""),
            ("top-level.json", "{}"),
        ];
        let written = files.iter().all(|(name, body)| {
            let path = dir.join(name);
            path.parent().is_some_and(|p| std::fs::create_dir_all(p).is_ok()) && std::fs::write(&path, body).is_ok()
        });
        assert!(written);
        let samples = load_samples(&dir).unwrap_or_default();
        let _removed = std::fs::remove_dir_all(&dir);
        let got: Vec<(SampleKind, &str)> = samples.iter().map(|s| (s.kind, s.routing_key.as_str())).collect();
        assert_eq!(
            got,
            [
                (SampleKind::Valid, "contact.changed"),
                (SampleKind::Valid, "contact.deleted"),
                (SampleKind::Invalid, "contact.changed"),
                (SampleKind::Unroutable, "contact.chnaged"),
            ]
        );
    }
}
