//! `switchyard dlq list|show|replay|purge`: a worker's dead letters (`<worker>.dead`).

use std::io::{IsTerminal as _, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mq::admin::{Admin, DeadLetter, DeadLetterFilter};
use serde_json::{Value, json};
use settings::Strings;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{connect, table, truncate, usage};
use crate::workers;

/// Longest error text shown in `dlq list`.
const ERROR_WIDTH: usize = 80;

/// `switchyard dlq` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters (without removing them).
    List(ListArgs),
    /// Show one dead letter: every header we know and the body.
    Show(ShowArgs),
    /// Republish dead letters to their original routing key with the attempt count reset.
    Replay(ReplayArgs),
    /// Delete dead letters of a worker: all of them, or those matching the filters.
    Purge(PurgeArgs),
}

/// Filters shared by `list`, `replay` and `purge`.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only this error class (`invalid`, `permanent`, `exhausted`, `poison`).
    #[arg(long, value_name = "CLASS")]
    class: Option<String>,
    /// Only this message type.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
}

impl FilterArgs {
    /// The broker-side filter, checking that the time window is not empty.
    fn to_filter(&self, message_id: Option<String>, window: &TimeArgs) -> anyhow::Result<DeadLetterFilter> {
        if let (Some(since), Some(until)) = (window.since, window.until)
            && since >= until
        {
            return Err(usage("--since must be earlier than --until"));
        }
        Ok(DeadLetterFilter {
            class: self.class.clone(),
            kind: self.kind.clone(),
            message_id,
            failed_since: window.since,
            failed_until: window.until,
        })
    }
}

/// A time window on `x-switchyard-failed-at`.
#[derive(Debug, Args)]
pub(crate) struct TimeArgs {
    /// Only letters dead-lettered at or after this time: RFC 3339 (`2026-11-20T10:00:00Z`) or a
    /// duration ago (`30m`, `2h`, `7d`).
    #[arg(long, value_name = "TIME", value_parser = parse_time_bound)]
    since: Option<OffsetDateTime>,
    /// Only letters dead-lettered before this time: RFC 3339 or a duration ago.
    #[arg(long, value_name = "TIME", value_parser = parse_time_bound)]
    until: Option<OffsetDateTime>,
}

/// Arguments of `dlq list`.
#[derive(Debug, Args)]
#[command(
    after_help = "With --since or --until, letters without x-switchyard-failed-at (poison messages \
                        dead-lettered by the broker) are left out: their time is unknown."
)]
pub(crate) struct ListArgs {
    /// The worker whose dead letters to read.
    #[arg(long, value_name = "NAME")]
    worker: String,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    window: TimeArgs,
    /// Show at most this many.
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: usize,
    /// Print a JSON array (with bodies) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `dlq show`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["message_id", "index"])))]
pub(crate) struct ShowArgs {
    /// The worker whose dead letter to show.
    #[arg(long, value_name = "NAME")]
    worker: String,
    /// The dead letter's message_id.
    #[arg(long, value_name = "ID")]
    message_id: Option<String>,
    /// The dead letter's position in the queue (the `index` column of `dlq list`).
    #[arg(long, value_name = "N")]
    index: Option<usize>,
}

/// Arguments of `dlq replay`.
#[derive(Debug, Args)]
#[command(after_help = "Each letter leaves the dead queue only after its republish is confirmed.")]
pub(crate) struct ReplayArgs {
    /// The worker whose dead letters to replay.
    #[arg(long, value_name = "NAME")]
    worker: String,
    #[command(flatten)]
    filter: FilterArgs,
    /// Only the dead letter with this message_id.
    #[arg(long, value_name = "ID")]
    message_id: Option<String>,
    #[command(flatten)]
    window: TimeArgs,
    /// At most this many per second, e.g. `10` or `10/s`.
    #[arg(long, default_value = "10/s", value_parser = parse_rate, value_name = "N/s")]
    rate: u32,
    /// Show what would be replayed without changing anything.
    #[arg(long)]
    dry_run: bool,
}

/// Arguments of `dlq purge`.
#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// The worker whose dead letters to delete.
    #[arg(long, value_name = "NAME")]
    worker: String,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    window: TimeArgs,
    /// Show what would be deleted without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Confirm: the dead letters are deleted for good.
    #[arg(long)]
    yes: bool,
}

/// Parses `10` or `10/s` (messages per second, at least 1).
pub(crate) fn parse_rate(raw: &str) -> Result<u32, String> {
    let count = raw.trim().strip_suffix("/s").unwrap_or(raw.trim());
    match count.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{raw}` is not a rate; expected messages per second such as `10/s`"
        )),
    }
}

/// Reads `--since`/`--until`: RFC 3339, or a duration such as `2h` meaning that long ago.
pub(crate) fn parse_time_bound(raw: &str) -> Result<OffsetDateTime, String> {
    time_bound_at(raw, OffsetDateTime::now_utc())
}

/// [`parse_time_bound`] relative to `now`.
fn time_bound_at(raw: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let raw = raw.trim();
    if let Ok(at) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(at);
    }
    let ago: Duration = settings::parse_duration(raw).map_err(|_| {
        format!("`{raw}` is neither an RFC 3339 time (`2026-11-20T10:00:00Z`) nor a duration ago (`30m`, `2h`, `7d`)")
    })?;
    now.checked_sub(time::Duration::try_from(ago).map_err(|_| format!("`{raw}` is too long ago"))?)
        .ok_or_else(|| format!("`{raw}` is too long ago"))
}

/// Runs a `switchyard dlq` subcommand.
pub(crate) async fn run(command: DlqCommand, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let worker = match &command {
        DlqCommand::List(a) => &a.worker,
        DlqCommand::Show(a) => &a.worker,
        DlqCommand::Replay(a) => &a.worker,
        DlqCommand::Purge(a) => &a.worker,
    };
    let worker = workers::find(worker)?.name;
    let admin = connect(strings).await?;
    let result = match command {
        DlqCommand::List(args) => list(&admin, worker, &args, out).await,
        DlqCommand::Show(args) => show(&admin, worker, &args, out).await,
        DlqCommand::Replay(args) => replay(&admin, worker, &args, out).await,
        DlqCommand::Purge(args) => purge(&admin, worker, &args, out).await,
    };
    admin.close().await;
    result
}

/// Dead letters of `worker` passing `filter`, at most `limit`.
///
/// The whole queue is always read: peeking returns the messages to the back of the queue, so
/// reading only its head would rotate it and change every `index` shown before.
pub(crate) async fn read(
    admin: &Admin,
    worker: &str,
    filter: &DeadLetterFilter,
    limit: usize,
) -> anyhow::Result<Vec<DeadLetter>> {
    let letters = admin.dead_letters(worker, usize::MAX).await?;
    Ok(letters.into_iter().filter(|l| filter.matches(l)).take(limit).collect())
}

fn or_dash(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned()
}

/// The `dlq list` table.
pub(crate) fn letters_table(letters: &[DeadLetter]) -> String {
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                l.index.to_string(),
                or_dash(l.message_id.as_deref()),
                or_dash(l.kind.as_deref()),
                l.class.clone(),
                l.attempt.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                or_dash(l.failed_at.as_deref()),
                truncate(&l.error, ERROR_WIDTH),
            ]
        })
        .collect();
    table(
        &["index", "message_id", "type", "class", "attempt", "failed_at", "error"],
        &rows,
    )
}

fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn letter_json(letter: &DeadLetter) -> Value {
    json!({
        "index": letter.index,
        "message_id": letter.message_id,
        "type": letter.kind,
        "class": letter.class,
        "error": letter.error,
        "attempt": letter.attempt,
        "original_routing_key": letter.original_routing_key,
        "scope": letter.scope,
        "failed_at": letter.failed_at,
        "worker": letter.worker,
        "correlation_id": letter.correlation_id,
        "body": body_value(&letter.body),
    })
}

async fn list(admin: &Admin, worker: &str, args: &ListArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let filter = args.filter.to_filter(None, &args.window)?;
    let letters: Vec<DeadLetter> = read(admin, worker, &filter, usize::MAX)
        .await?
        .into_iter()
        .take(args.limit)
        .collect();
    if args.json {
        let array: Vec<Value> = letters.iter().map(letter_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&array)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let queue = admin.names().dead_queue(worker);
    let depth = admin.queue_depth(&queue).await?;
    if letters.is_empty() {
        writeln!(out, "no matching dead letters in `{queue}` ({depth} in total)")?;
    } else {
        write!(out, "{}", letters_table(&letters))?;
        writeln!(out, "{} shown, {depth} in `{queue}`", letters.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The `dlq show` text.
pub(crate) fn letter_details(queue: &str, letter: &DeadLetter) -> String {
    let fields = [
        ("queue", queue.to_owned()),
        ("index", letter.index.to_string()),
        ("message_id", or_dash(letter.message_id.as_deref())),
        ("type", or_dash(letter.kind.as_deref())),
        ("error-class", letter.class.clone()),
        ("error", or_dash(Some(&letter.error))),
        (
            "attempt",
            letter.attempt.map_or_else(|| "-".to_owned(), |a| a.to_string()),
        ),
        ("original-routing-key", or_dash(letter.original_routing_key.as_deref())),
        ("scope", or_dash(letter.scope.as_deref())),
        ("failed-at", or_dash(letter.failed_at.as_deref())),
        ("worker", or_dash(letter.worker.as_deref())),
        ("correlation-id", or_dash(letter.correlation_id.as_deref())),
    ];
    let mut text = String::new();
    for (name, value) in fields {
        text.push_str(&format!("{:<22}{value}\n", format!("{name}:")));
    }
    let body = match serde_json::from_slice::<Value>(&letter.body) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&letter.body).into_owned(),
    };
    text.push_str(&format!("body ({} bytes):\n{body}\n", letter.body.len()));
    text
}

async fn show(admin: &Admin, worker: &str, args: &ShowArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let queue = admin.names().dead_queue(worker);
    let letter = match (&args.message_id, args.index) {
        (Some(id), _) => {
            let filter = DeadLetterFilter {
                message_id: Some(id.clone()),
                ..DeadLetterFilter::default()
            };
            read(admin, worker, &filter, 1).await?.into_iter().next()
        }
        (None, Some(index)) => read(admin, worker, &DeadLetterFilter::default(), usize::MAX)
            .await?
            .into_iter()
            .find(|l| l.index == index),
        (None, None) => return Err(usage("pass --message-id or --index")),
    };
    let Some(letter) = letter else {
        let which = args
            .message_id
            .as_ref()
            .map_or_else(|| format!("index {:?}", args.index), |id| format!("message_id `{id}`"));
        anyhow::bail!("no dead letter with {which} in `{queue}`");
    };
    write!(out, "{}", letter_details(&queue, &letter))?;
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::try_from(len).unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} replayed ({per_sec}, eta {eta})") {
        bar.set_style(style);
    }
    bar
}

async fn replay(admin: &Admin, worker: &str, args: &ReplayArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let filter = args.filter.to_filter(args.message_id.clone(), &args.window)?;
    // Counting first sizes the progress bar; letters arriving meanwhile only make it overshoot.
    let n_matching = read(admin, worker, &filter, usize::MAX).await?.len();
    let bar = progress_bar(n_matching);
    let replayed = admin
        .replay(worker, &filter, args.rate, args.dry_run, |_| bar.inc(1))
        .await;
    bar.finish_and_clear();
    let replayed = replayed?;
    if args.dry_run {
        if !replayed.is_empty() {
            write!(out, "{}", letters_table(&replayed))?;
        }
        writeln!(out, "would replay {}", replayed.len())?;
    } else {
        writeln!(out, "replayed {}", replayed.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn purge(admin: &Admin, worker: &str, args: &PurgeArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let queue = admin.names().dead_queue(worker);
    if !args.yes && !args.dry_run {
        let depth = admin.queue_depth(&queue).await?;
        return Err(usage(format!(
            "refusing to purge `{queue}` without --yes: its {depth} dead letter(s) would be deleted for good; \
             inspect them with `switchyard dlq list --worker {worker}` or replay them with `switchyard dlq replay`"
        )));
    }
    let filter = args.filter.to_filter(None, &args.window)?;
    if filter == DeadLetterFilter::default() && !args.dry_run {
        let purged = admin.purge_dead(worker).await?;
        writeln!(out, "purged {purged} dead letter(s) from `{queue}`")?;
        return Ok(ExitCode::SUCCESS);
    }
    let purged = admin.purge_matching(worker, &filter, args.dry_run).await?;
    if args.dry_run {
        if !purged.is_empty() {
            write!(out, "{}", letters_table(&purged))?;
        }
        writeln!(out, "would purge {} dead letter(s) from `{queue}`", purged.len())?;
    } else {
        writeln!(out, "purged {} matching dead letter(s) from `{queue}`", purged.len())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(index: usize, error: &str) -> DeadLetter {
        DeadLetter {
            index,
            message_id: Some(format!("m-{index}")),
            kind: Some("contact.changed".into()),
            class: "invalid".into(),
            error: error.into(),
            attempt: Some(1),
            original_routing_key: Some("contact.changed".into()),
            scope: None,
            failed_at: Some("2026-01-01T00:00:00Z".into()),
            worker: Some("contact-sync".into()),
            correlation_id: None,
            body: br#"{"contact_id":"c-1"}"#.to_vec(),
        }
    }

    /// Whether `l` passes a filter with only the time window set.
    fn window_of(l: &DeadLetter, since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> bool {
        DeadLetterFilter {
            failed_since: since,
            failed_until: until,
            ..DeadLetterFilter::default()
        }
        .matches(l)
    }

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn time_bounds_accept_rfc3339_and_durations_ago() {
        let now = at("2026-11-20T12:00:00Z");
        assert_eq!(
            time_bound_at("2026-11-20T10:00:00Z", now),
            Ok(at("2026-11-20T10:00:00Z"))
        );
        assert_eq!(
            time_bound_at("2026-11-20T11:00:00+01:00", now),
            Ok(at("2026-11-20T10:00:00Z"))
        );
        assert_eq!(time_bound_at("2h", now), Ok(at("2026-11-20T10:00:00Z")));
        assert_eq!(time_bound_at("30m", now), Ok(at("2026-11-20T11:30:00Z")));
        assert_eq!(time_bound_at("1d", now), Ok(at("2026-11-19T12:00:00Z")));
        let error = time_bound_at("yesterday", now).err().unwrap_or_default();
        assert!(error.contains("RFC 3339") && error.contains("`yesterday`"), "{error}");
    }

    #[test]
    fn window_keeps_letters_failed_inside_it() {
        let mut l = letter(0, "e");
        l.failed_at = Some("2026-11-20T10:00:00Z".into());
        let (ten, eleven) = (at("2026-11-20T10:00:00Z"), at("2026-11-20T11:00:00Z"));
        assert!(window_of(&l, None, None));
        assert!(window_of(&l, Some(ten), None), "since is inclusive");
        assert!(!window_of(&l, Some(eleven), None));
        assert!(window_of(&l, None, Some(eleven)));
        assert!(!window_of(&l, None, Some(ten)), "until is exclusive");
    }

    #[test]
    fn window_leaves_out_letters_without_a_time() {
        let mut l = letter(0, "e");
        l.failed_at = None;
        assert!(window_of(&l, None, None));
        assert!(!window_of(&l, Some(OffsetDateTime::UNIX_EPOCH), None));
        l.failed_at = Some("not a time".into());
        assert!(!window_of(&l, None, Some(at("2100-01-01T00:00:00Z"))));
    }

    #[test]
    fn rate_accepts_a_count_per_second() {
        assert_eq!(parse_rate("10"), Ok(10));
        assert_eq!(parse_rate("25/s"), Ok(25));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("10/min").is_err());
    }

    #[test]
    fn list_table_truncates_the_error_to_80_characters() {
        let text = letters_table(&[letter(0, &"x".repeat(200))]);
        let line = text.lines().nth(1).unwrap_or_default();
        assert!(line.starts_with("0      m-0"), "{text}");
        assert!(line.ends_with(&format!("{}…", "x".repeat(79))), "{text}");
    }

    #[test]
    fn show_prints_headers_and_the_pretty_body() {
        let text = letter_details("contact-sync.dead", &letter(3, "at /email: bad"));
        assert!(text.contains("error-class:          invalid"), "{text}");
        assert!(text.contains("error:                at /email: bad"), "{text}");
        assert!(text.contains("{\n  \"contact_id\": \"c-1\"\n}"), "{text}");
    }

    #[test]
    fn json_list_keeps_non_json_bodies_as_text() {
        let mut broken = letter(0, "e");
        broken.body = b"{\"contact_id\":".to_vec();
        assert_eq!(letter_json(&broken)["body"], Value::String("{\"contact_id\":".into()));
        assert_eq!(letter_json(&letter(0, "e"))["body"]["contact_id"], "c-1");
    }
}
