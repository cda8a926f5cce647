//! `switchyard import contacts --file customers.{csv,jsonl}`: the one-off full export after a
//! destination is activated. Every row becomes one `contact.changed` (validated against its
//! schema first), published with confirms; contact-sync syncs them, using the vendors' bulk
//! endpoints for contacts without an order.
//!
//! A bad row is reported on standard error as `line N: field: problem` (values are never
//! echoed: they are personal data) and does not stop the others. A progress bar shows the
//! publishing on a terminal; the summary goes to standard output. Exit 0 only when every row
//! was published.
//!
//! CSV: a header row; `contact_id` and `email` are required; optional `first_name`,
//! `last_name`, `phone`, `city`, `country`, `language`, `changed_at` (RFC 3339; default: the
//! time of the import), `order_id`, `order_placed_at`, `order_total`, `order_currency`,
//! `permissions.<name>` (true/false) and `attributes.<name>` (text). Empty cells are left out.
//! JSONL: one `contact.changed` body per line (`changed_at` defaults as above); blank lines are
//! skipped.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use messages::{Invalid, Schemas};
use mq::admin::Admin;
use serde_json::{Map, Value};
use settings::Strings;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;

use crate::support::{connect, usage};

/// The message type every row becomes.
const KIND: &str = "contact.changed";
/// Publishes in flight at once.
const WINDOW: usize = 64;
/// The plain columns of the CSV format.
const COLUMNS: [&str; 13] = [
    "contact_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "city",
    "country",
    "language",
    "changed_at",
    "order_id",
    "order_placed_at",
    "order_total",
    "order_currency",
];

/// `switchyard import …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// Publish every customer of a full export (CSV or JSONL) as contact.changed, for
    /// contact-sync to sync to every enabled destination.
    #[command(
        after_help = "CSV: a header row with contact_id and email (required) and any of first_name, \
        last_name, phone, city, country, language, changed_at (RFC 3339; default: now), order_id, \
        order_placed_at, order_total, order_currency, permissions.<name> (true/false) and \
        attributes.<name>; empty cells are left out. JSONL: one contact.changed body per line. \
        Malformed rows are reported as `line N: field: problem` on standard error and skipped. \
        contact-sync must have declared its queue (or run `switchyard topology declare`); otherwise \
        the messages land in switchyard.unroutable. Exit codes: 0 every row was published, \
        1 a row was malformed or not published, 64 usage error."
    )]
    Contacts(ContactsArgs),
}

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Comma- (or `--delimiter`-) separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Arguments of `switchyard import contacts`.
#[derive(Debug, Args)]
pub(crate) struct ContactsArgs {
    /// The export file (`.csv` or `.jsonl`/`.ndjson`).
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// The file format; by default from the file name's extension.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// CSV field delimiter: `,` or `;`.
    #[arg(long, value_name = "CHAR", default_value = ",", value_parser = parse_delimiter)]
    delimiter: u8,
    /// Check every row and print the summary without publishing anything.
    #[arg(long)]
    dry_run: bool,
}

fn parse_delimiter(raw: &str) -> Result<u8, String> {
    match raw {
        "," => Ok(b','),
        ";" => Ok(b';'),
        _ => Err("use `,` or `;`".to_owned()),
    }
}

/// Runs an import command.
pub(crate) async fn run(
    command: ImportCommand,
    strings: &dyn Strings,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match command {
        ImportCommand::Contacts(args) => contacts(&args, strings, out).await,
    }
}

/// One data row: where it starts and its `contact.changed` body, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// Line in the file where the row starts (1-based; a CSV header is line 1).
    pub(crate) line: u64,
    /// The validated body, or the problems (`field: problem; ...`).
    pub(crate) body: Result<Vec<u8>, String>,
}

fn format_of(path: &Path, given: Option<Format>) -> anyhow::Result<Format> {
    if let Some(format) = given {
        return Ok(format);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
        _ => Err(usage(format!(
            "{}: cannot tell the format from the file name; name it .csv or .jsonl, or pass --format",
            path.display()
        ))),
    }
}

/// The field a JSON pointer names, in the file's own terms.
fn field_of(path: &str, format: Format) -> String {
    let parts: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match (format, parts.as_slice()) {
        (_, []) => "row".to_owned(),
        (Format::Csv, ["order", "placed_at"]) => "order_placed_at".to_owned(),
        (Format::Csv, ["order", field]) if *field != "order_id" => format!("order_{field}"),
        (Format::Csv, ["order", field]) => (*field).to_owned(),
        (_, parts) => parts.join("."),
    }
}

/// Validates `value` as a `contact.changed` body.
fn check(schemas: &Schemas, value: &Value, format: Format) -> Result<Vec<u8>, String> {
    let body = serde_json::to_vec(value).map_err(|e| format!("row: cannot encode: {e}"))?;
    match schemas.check(KIND, &body) {
        Ok(_) => Ok(body),
        Err(Invalid::Schema(violations)) => Err(violations
            .iter()
            .map(|v| format!("{}: {}", field_of(&v.path, format), v.problem))
            .collect::<Vec<_>>()
            .join("; ")),
        Err(other) => Err(format!("row: {other}")),
    }
}

fn now_text(now: OffsetDateTime) -> String {
    now.format(&Rfc3339).unwrap_or_default()
}

/// Where each CSV column is.
#[derive(Debug)]
struct Layout {
    plain: BTreeMap<&'static str, usize>,
    permissions: Vec<(String, usize)>,
    attributes: Vec<(String, usize)>,
}

fn layout(header: &csv::StringRecord) -> Result<Layout, String> {
    let mut layout = Layout {
        plain: BTreeMap::new(),
        permissions: Vec::new(),
        attributes: Vec::new(),
    };
    for (index, raw) in header.iter().enumerate() {
        let name = raw.trim_start_matches('\u{feff}').trim();
        if let Some(column) = COLUMNS.iter().find(|c| c.eq_ignore_ascii_case(name)) {
            if layout.plain.insert(column, index).is_some() {
                return Err(format!("line 1: the column `{column}` appears twice"));
            }
        } else if let Some(permission) = name.strip_prefix("permissions.") {
            layout.permissions.push((permission.to_owned(), index));
        } else if let Some(attribute) = name.strip_prefix("attributes.") {
            layout.attributes.push((attribute.to_owned(), index));
        } else {
            return Err(format!(
                "line 1: unknown column `{name}`; use {}, permissions.<name> or attributes.<name>",
                COLUMNS.join(", ")
            ));
        }
    }
    let missing: Vec<&str> = ["contact_id", "email"]
        .into_iter()
        .filter(|c| !layout.plain.contains_key(c))
        .collect();
    if !missing.is_empty() {
        return Err(format!("line 1: the header lacks the column(s) {}", missing.join(", ")));
    }
    Ok(layout)
}

/// The `contact.changed` body of one CSV record (not yet validated), or the problems found.
fn csv_value(layout: &Layout, record: &csv::StringRecord, now: &str) -> Result<Value, String> {
    let cell = |index: usize| record.get(index).map(str::trim).filter(|v| !v.is_empty());
    let plain = |name: &str| layout.plain.get(name).and_then(|index| cell(*index));
    let mut problems = Vec::new();
    let mut body = Map::new();
    for name in [
        "contact_id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "city",
        "country",
        "language",
    ] {
        if let Some(value) = plain(name) {
            body.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    body.insert(
        "changed_at".to_owned(),
        Value::String(plain("changed_at").unwrap_or(now).to_owned()),
    );
    let mut permissions = Map::new();
    for (name, index) in &layout.permissions {
        match cell(*index).map(str::to_ascii_lowercase).as_deref() {
            None => {}
            Some("true" | "1" | "yes") => {
                permissions.insert(name.clone(), Value::Bool(true));
            }
            Some("false" | "0" | "no") => {
                permissions.insert(name.clone(), Value::Bool(false));
            }
            Some(_) => problems.push(format!("permissions.{name}: expected true or false")),
        }
    }
    if !permissions.is_empty() {
        body.insert("permissions".to_owned(), Value::Object(permissions));
    }
    let attributes: Map<String, Value> = layout
        .attributes
        .iter()
        .filter_map(|(name, index)| cell(*index).map(|v| (name.clone(), Value::String(v.to_owned()))))
        .collect();
    if !attributes.is_empty() {
        body.insert("attributes".to_owned(), Value::Object(attributes));
    }
    let order_fields = ["order_id", "order_placed_at", "order_total", "order_currency"];
    if order_fields.iter().any(|f| plain(f).is_some()) {
        let mut order = Map::new();
        match plain("order_id") {
            Some(id) => {
                order.insert("order_id".to_owned(), Value::String(id.to_owned()));
            }
            None => problems.push("order_id: is required when the row has order columns".to_owned()),
        }
        match plain("order_placed_at") {
            Some(at) => {
                order.insert("placed_at".to_owned(), Value::String(at.to_owned()));
            }
            None => problems.push("order_placed_at: is required when the row has order columns".to_owned()),
        }
        if let Some(total) = plain("order_total") {
            match total.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                Some(number) => {
                    order.insert("total".to_owned(), Value::Number(number));
                }
                None => problems.push("order_total: is not a number".to_owned()),
            }
        }
        if let Some(currency) = plain("order_currency") {
            order.insert("currency".to_owned(), Value::String(currency.to_owned()));
        }
        body.insert("order".to_owned(), Value::Object(order));
    }
    if problems.is_empty() {
        Ok(Value::Object(body))
    } else {
        Err(problems.join("; "))
    }
}

/// The 1-based line of byte `offset` in `bytes`, counting forward from the last call
/// (offsets only grow) and skipping blank lines before a record.
#[derive(Debug)]
struct Lines<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl Lines<'_> {
    fn at(&mut self, offset: u64) -> u64 {
        let mut offset = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        while self.bytes.get(offset).is_some_and(|b| *b == b'\n' || *b == b'\r') {
            offset += 1;
        }
        if offset > self.offset {
            let newlines = self.bytes[self.offset..offset].iter().filter(|b| **b == b'\n').count();
            self.line += u64::try_from(newlines).unwrap_or(u64::MAX);
            self.offset = offset;
        }
        self.line
    }
}

/// Reads and checks a CSV export. Only a bad header is an error; bad rows come back as rows
/// with their problems.
pub(crate) fn read_csv(
    bytes: &[u8],
    delimiter: u8,
    schemas: &Schemas,
    now: OffsetDateTime,
) -> Result<Vec<Row>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| format!("line 1: cannot read the header: {e}"))?
        .clone();
    if header.len() == 1 && delimiter == b',' && header.get(0).is_some_and(|h| h.contains(';')) {
        return Err("line 1: the header has one column that contains `;`: use --delimiter ';'".to_owned());
    }
    let layout = layout(&header)?;
    let now = now_text(now);
    let mut lines = Lines {
        bytes,
        offset: 0,
        line: 1,
    };
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = lines.at(record.position().map_or(0, csv::Position::byte));
                let body = if record.len() != header.len() {
                    Err(format!("row: expected {} fields, found {}", header.len(), record.len()))
                } else {
                    csv_value(&layout, &record, &now).and_then(|value| check(schemas, &value, Format::Csv))
                };
                rows.push(Row { line, body });
            }
            Err(error) => {
                let line = lines.at(error.position().map_or(0, csv::Position::byte));
                let problem = match error.kind() {
                    csv::ErrorKind::Utf8 { .. } => "row: is not valid UTF-8".to_owned(),
                    _ => format!("row: cannot be parsed: {error}"),
                };
                rows.push(Row {
                    line,
                    body: Err(problem),
                });
            }
        }
    }
    Ok(rows)
}

/// Reads and checks a JSONL export: every non-blank line is a row.
pub(crate) fn read_jsonl(bytes: &[u8], schemas: &Schemas, now: OffsetDateTime) -> Vec<Row> {
    let now = now_text(now);
    let mut rows = Vec::new();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let body = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(mut object)) => {
                object.entry("changed_at").or_insert_with(|| Value::String(now.clone()));
                check(schemas, &Value::Object(object), Format::Jsonl)
            }
            Ok(_) => Err("row: is not a JSON object".to_owned()),
            // serde_json's message names the position, never the text.
            Err(error) => Err(format!("row: is not valid JSON ({error})")),
        };
        rows.push(Row { line, body });
    }
    rows
}

fn progress_bar(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::try_from(len).unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} published ({per_sec}, eta {eta})") {
        bar.set_style(style);
    }
    bar
}

/// Publishes the good rows (at most [`WINDOW`] in flight). Stops at the first publish the
/// broker does not confirm; returns how many were published and the first failure.
async fn publish(admin: Arc<Admin>, rows: &[Row]) -> (usize, Option<(u64, String)>) {
    let good: Vec<(u64, Vec<u8>)> = rows
        .iter()
        .filter_map(|row| row.body.as_ref().ok().map(|body| (row.line, body.clone())))
        .collect();
    let bar = progress_bar(good.len());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut published = 0;
    let mut failure: Option<(u64, String)> = None;
    let mut in_flight = JoinSet::new();
    let mut queue = good.into_iter();
    loop {
        while failure.is_none() && in_flight.len() < WINDOW {
            let Some((line, body)) = queue.next() else { break };
            let admin = Arc::clone(&admin);
            let message_id = format!("import-{run}-{line}");
            in_flight.spawn(async move {
                let result = admin.publish(KIND, &message_id, None, &body).await;
                (line, result.map_err(|e| e.to_string()))
            });
        }
        let Some(done) = in_flight.join_next().await else { break };
        match done {
            Ok((_, Ok(()))) => {
                published += 1;
                bar.inc(1);
            }
            Ok((line, Err(error))) => {
                if failure.as_ref().is_none_or(|(first, _)| line < *first) {
                    failure = Some((line, error));
                }
            }
            Err(error) => {
                failure.get_or_insert((0, format!("a publishing task failed: {error}")));
            }
        }
    }
    bar.finish_and_clear();
    (published, failure)
}

async fn contacts(args: &ContactsArgs, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let format = format_of(&args.file, args.format)?;
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let schemas = Schemas::load(messages::DEFAULT_MAX_BODY_BYTES).map_err(anyhow::Error::msg)?;
    let now = OffsetDateTime::now_utc();
    let rows = match format {
        Format::Csv => read_csv(&bytes, args.delimiter, &schemas, now)
            .map_err(|e| usage(format!("{}: {e}", args.file.display())))?,
        Format::Jsonl => read_jsonl(&bytes, &schemas, now),
    };
    let mut malformed = 0;
    for row in &rows {
        if let Err(problem) = &row.body {
            eprintln!("line {}: {problem}", row.line);
            malformed += 1;
        }
    }
    let good = rows.len() - malformed;
    let (published, failure) = if args.dry_run || good == 0 {
        (0, None)
    } else {
        let admin = Arc::new(connect(strings).await?);
        let outcome = publish(Arc::clone(&admin), &rows).await;
        if let Ok(admin) = Arc::try_unwrap(admin) {
            admin.close().await;
        }
        outcome
    };
    if let Some((line, error)) = &failure {
        eprintln!("line {line}: not published, and the rest was stopped: {error}");
    }
    let verb = if args.dry_run { "valid" } else { "published" };
    let counted = if args.dry_run { good } else { published };
    writeln!(
        out,
        "rows: {}, {verb}: {counted}, malformed: {malformed}, not published: {}",
        rows.len(),
        if args.dry_run { 0 } else { good - published }
    )?;
    Ok(if malformed == 0 && (args.dry_run || published == good) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-20 10:00 UTC);

    fn schemas() -> Schemas {
        Schemas::load(messages::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"))
    }

    fn csv_rows(text: &str) -> Vec<Row> {
        read_csv(text.as_bytes(), b',', &schemas(), NOW).unwrap_or_else(|e| panic!("{e}"))
    }

    fn body(row: &Row) -> Value {
        row.body
            .as_ref()
            .ok()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default()
    }

    #[test]
    fn csv_rows_become_contact_changed_bodies() {
        let rows = csv_rows(
            "contact_id,email,first_name,permissions.newsletter,attributes.loyalty_tier,order_id,order_placed_at,order_total\n\
             c-1,a@example.com,Ann,true,gold,,,\n\
             c-2,b@example.com,,no,,o-9,2026-01-02T03:04:05Z,12.5\n",
        );
        assert_eq!(rows.len(), 2);
        let first = body(&rows[0]);
        assert_eq!(first["contact_id"], "c-1");
        assert_eq!(first["permissions"]["newsletter"], true);
        assert_eq!(first["attributes"]["loyalty_tier"], "gold");
        assert_eq!(first["changed_at"], "2026-11-20T10:00:00Z");
        assert!(first.get("order").is_none() && first.get("last_name").is_none());
        let second = body(&rows[1]);
        assert_eq!(second["order"]["order_id"], "o-9");
        assert_eq!(second["order"]["total"], 12.5);
        assert_eq!(second["permissions"]["newsletter"], false);
    }

    #[test]
    fn malformed_csv_rows_name_line_and_field_but_not_the_value() {
        let rows = csv_rows(
            "contact_id,email,permissions.newsletter\n\
             c-1,a@example.com,true\n\
             \n\
             c-2,not-an-address,true\n\
             c-3,c@example.com,maybe\n\
             c-4\n",
        );
        let lines: Vec<(u64, bool)> = rows.iter().map(|r| (r.line, r.body.is_ok())).collect();
        assert_eq!(lines, [(2, true), (4, false), (5, false), (6, false)]);
        let problem = rows[1].body.as_ref().err().cloned().unwrap_or_default();
        assert!(problem.starts_with("email: "), "{problem}");
        assert!(!problem.contains("not-an-address"), "{problem}");
        assert!(
            rows[2]
                .body
                .as_ref()
                .err()
                .is_some_and(|p| p.contains("permissions.newsletter"))
        );
        assert!(
            rows[3]
                .body
                .as_ref()
                .err()
                .is_some_and(|p| p.contains("expected 3 fields"))
        );
    }

    #[test]
    fn a_bad_header_is_a_usage_error() {
        let schemas = schemas();
        let unknown = read_csv(b"contact_id,email,frist_name\n", b',', &schemas, NOW);
        assert!(unknown.err().is_some_and(|e| e.contains("frist_name")));
        let missing = read_csv(b"contact_id,first_name\n", b',', &schemas, NOW);
        assert!(missing.err().is_some_and(|e| e.contains("email")));
        let semicolons = read_csv(b"contact_id;email\n", b',', &schemas, NOW);
        assert!(semicolons.err().is_some_and(|e| e.contains("--delimiter")));
    }

    #[test]
    fn jsonl_rows_are_checked_line_by_line() {
        let text = "{\"contact_id\":\"c-1\",\"email\":\"a@example.com\"}\n\n[1]\n{\"contact_id\":\"c-2\",\"email\":\"x\"}\n{broken\n";
        let rows = read_jsonl(text.as_bytes(), &schemas(), NOW);
        let lines: Vec<(u64, bool)> = rows.iter().map(|r| (r.line, r.body.is_ok())).collect();
        assert_eq!(lines, [(1, true), (3, false), (4, false), (5, false)]);
        assert_eq!(body(&rows[0])["changed_at"], "2026-11-20T10:00:00Z");
        assert!(rows[2].body.as_ref().err().is_some_and(|p| p.starts_with("email: ")));
    }

    #[test]
    fn the_format_follows_the_extension() {
        assert!(matches!(format_of(Path::new("a.CSV"), None), Ok(Format::Csv)));
        assert!(matches!(format_of(Path::new("a.jsonl"), None), Ok(Format::Jsonl)));
        assert!(matches!(
            format_of(Path::new("a.txt"), Some(Format::Csv)),
            Ok(Format::Csv)
        ));
        assert!(format_of(Path::new("a.txt"), None).is_err());
        assert_eq!(field_of("/order/placed_at", Format::Csv), "order_placed_at");
        assert_eq!(field_of("/order/total", Format::Csv), "order_total");
        assert_eq!(field_of("/order/placed_at", Format::Jsonl), "order.placed_at");
        assert_eq!(field_of("/attributes/x", Format::Csv), "attributes.x");
        assert_eq!(field_of("/", Format::Csv), "row");
    }
}
