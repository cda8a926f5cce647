//! `switchyard batch recommendations`: the Froomle × Selligent batch flow over the broker.
//! Reads a request CSV (`environment,user_id,list_name,list_size,page_type`, optionally
//! `campaign_id` and `device_id`), validates every row (a bad row is reported with its line
//! number and field and does not stop the others), publishes one `recommendation.requested`
//! per good row with its own correlation id, collects the `recommendation.ready` answers on a
//! results queue of this run, and writes the response CSV (one row per recommended item)
//! atomically (`<out>.tmp`, then rename). Exit 0 only when every row got its list.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use messages::Schemas;
use messages::recommendation::{
    MAX_LIST_SIZE, MIN_LIST_SIZE, ReadyStatus, RecommendationReady, RecommendationRequested,
};
use mq::admin::Admin;
use settings::Strings;
use tokio::time::Instant;

use crate::support::{connect, usage};

/// The request file's required columns, in the order Froomle documents them.
pub(crate) const REQUEST_COLUMNS: [&str; 5] = ["environment", "user_id", "list_name", "list_size", "page_type"];
/// The response file's columns.
pub(crate) const RESPONSE_COLUMNS: [&str; 9] = [
    "user_id",
    "list_name",
    "rank",
    "item_id",
    "title",
    "url",
    "image_url",
    "description",
    "request_id",
];

/// `switchyard batch …`.
#[derive(Debug, Subcommand)]
pub(crate) enum BatchCommand {
    /// Request Froomle recommendations for every row of a CSV file and write the answers as a
    /// CSV file (one row per recommended item), through the broker and the recommendations
    /// worker.
    #[command(
        after_help = "The request file has a header row with the columns environment, user_id, list_name, \
        list_size (1 to 100) and page_type, optionally campaign_id and device_id; other columns are ignored. \
        The response file has the columns user_id, list_name, rank, item_id, title, url, image_url, \
        description, request_id. Malformed rows are reported as `line N: field: problem` on standard error \
        and skipped. Exit codes: 0 every row got its list, 1 a row was malformed, failed or timed out, \
        64 usage error."
    )]
    Recommendations(RecommendationsArgs),
}

/// Arguments of `switchyard batch recommendations`.
#[derive(Debug, Args)]
pub(crate) struct RecommendationsArgs {
    /// The request CSV file.
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// Where to write the response CSV (written to FILE.tmp first, then renamed).
    #[arg(long = "out", value_name = "FILE")]
    output: PathBuf,
    /// Field delimiter of both files: `,` or `;`.
    #[arg(long, value_name = "CHAR", default_value = ",", value_parser = parse_delimiter)]
    delimiter: u8,
    /// Give up on the rows still unanswered when no answer has arrived for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

fn parse_delimiter(raw: &str) -> Result<u8, String> {
    match raw {
        "," => Ok(b','),
        ";" => Ok(b';'),
        _ => Err("use `,` or `;`".to_owned()),
    }
}

/// Runs a batch command.
pub(crate) async fn run(command: BatchCommand, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match command {
        BatchCommand::Recommendations(args) => recommendations(&args, strings, out).await,
    }
}

/// One data row of the request file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// Line in the file where the row starts (the header is line 1).
    pub(crate) line: u64,
    /// The row as a valid request, or why it is not one.
    pub(crate) request: Result<RecommendationRequested, String>,
}

/// Where each column is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Columns {
    required: [usize; 5],
    campaign_id: Option<usize>,
    device_id: Option<usize>,
}

/// Finds the columns in the header row (names trimmed, case-insensitive, a UTF-8 BOM ignored).
pub(crate) fn columns(header: &csv::StringRecord) -> Result<Columns, String> {
    let names: Vec<String> = header
        .iter()
        .map(|name| name.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
        .collect();
    let find = |wanted: &str| names.iter().position(|name| name == wanted);
    let missing: Vec<&str> = REQUEST_COLUMNS.iter().copied().filter(|c| find(c).is_none()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "line 1: the header lacks the column(s) {}; expected {}",
            missing.join(", "),
            REQUEST_COLUMNS.join(",")
        ));
    }
    let mut required = [0; 5];
    for (slot, name) in required.iter_mut().zip(REQUEST_COLUMNS) {
        *slot = find(name).unwrap_or_default();
    }
    Ok(Columns {
        required,
        campaign_id: find("campaign_id"),
        device_id: find("device_id"),
    })
}

/// A value for an error text: quoted, at most 40 characters.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(40).collect();
    if cut.len() < value.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

fn is_name(value: &str, extra: &str, max: usize) -> bool {
    !value.is_empty()
        && value.chars().count() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c) || extra.contains(c))
}

/// Validates one data row. Every problem names its field; values are only quoted for the
/// fields that cannot hold personal data (user and device ids are never echoed).
pub(crate) fn parse_row(columns: &Columns, record: &csv::StringRecord) -> Result<RecommendationRequested, String> {
    let field = |index: usize| record.get(index).map(str::trim).unwrap_or_default();
    let [environment, user_id, list_name, list_size, page_type] = columns.required.map(field);
    let mut problems = Vec::new();
    if environment.is_empty() {
        problems.push("environment: is empty".to_owned());
    } else if !is_name(environment, "", 64) {
        problems.push(format!(
            "environment: {} is not a Froomle environment name (letters, digits, `-`, `_`; at most 64)",
            shown(environment)
        ));
    }
    if user_id.is_empty() {
        problems.push("user_id: is empty".to_owned());
    } else if user_id.chars().count() > 256 {
        problems.push("user_id: is longer than 256 characters".to_owned());
    }
    if list_name.is_empty() {
        problems.push("list_name: is empty".to_owned());
    } else if !is_name(list_name, ".:", 128) {
        problems.push(format!(
            "list_name: {} is not a list name (letters, digits, `-`, `_`, `.`, `:`; at most 128)",
            shown(list_name)
        ));
    }
    let size = list_size
        .parse::<u32>()
        .ok()
        .filter(|n| (MIN_LIST_SIZE..=MAX_LIST_SIZE).contains(n));
    if size.is_none() {
        problems.push(format!(
            "list_size: {} is not a whole number from {MIN_LIST_SIZE} to {MAX_LIST_SIZE}",
            shown(list_size)
        ));
    }
    if page_type.is_empty() {
        problems.push("page_type: is empty".to_owned());
    } else if !is_name(page_type, "", 64) {
        problems.push(format!(
            "page_type: {} is not a Froomle page type (letters, digits, `-`, `_`; at most 64)",
            shown(page_type)
        ));
    }
    let optional = |index: Option<usize>| index.map(field).filter(|v| !v.is_empty()).map(str::to_owned);
    let campaign_id = optional(columns.campaign_id);
    if campaign_id.as_ref().is_some_and(|c| c.chars().count() > 128) {
        problems.push("campaign_id: is longer than 128 characters".to_owned());
    }
    let device_id = optional(columns.device_id);
    if device_id.as_ref().is_some_and(|d| d.chars().count() > 256) {
        problems.push("device_id: is longer than 256 characters".to_owned());
    }
    match size {
        Some(list_size) if problems.is_empty() => Ok(RecommendationRequested {
            environment: environment.to_owned(),
            user_id: user_id.to_owned(),
            list_name: list_name.to_owned(),
            list_size,
            page_type: page_type.to_owned(),
            campaign_id,
            device_id,
        }),
        _ => Err(problems.join("; ")),
    }
}

/// Counts lines as the file is read: the physical line where a record starts, blank lines
/// included (csv's own line numbers skip blank lines).
#[derive(Debug)]
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: u64,
}

impl LineCounter<'_> {
    /// The line of the first non-blank byte at or after `offset` (offsets only grow).
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut offset = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        // A record's position is where parsing resumed, before any blank lines it skipped.
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

/// Reads and validates the request file. Only a bad header is an error; bad rows come back as
/// rows with their problem.
pub(crate) fn read_requests(bytes: &[u8], delimiter: u8) -> Result<Vec<Row>, String> {
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
    let columns = columns(&header)?;
    let mut lines = LineCounter {
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
                let line = lines.line_at(record.position().map_or(0, csv::Position::byte));
                let request = if record.len() < header.len() {
                    Err(format!("expected {} fields, found {}", header.len(), record.len()))
                } else {
                    parse_row(&columns, &record)
                };
                rows.push(Row { line, request });
            }
            Err(error) => {
                let line = lines.line_at(error.position().map_or(0, csv::Position::byte));
                let problem = match error.kind() {
                    csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_owned(),
                    _ => format!("cannot be parsed: {error}"),
                };
                rows.push(Row {
                    line,
                    request: Err(problem),
                });
            }
        }
    }
    Ok(rows)
}

/// Writes the response CSV: the header, then one row per item of every ready answer, in the
/// order of `answers`.
pub(crate) fn write_responses<'a>(
    writer: impl std::io::Write,
    delimiter: u8,
    answers: impl IntoIterator<Item = &'a RecommendationReady>,
) -> Result<usize, csv::Error> {
    let mut csv = csv::WriterBuilder::new().delimiter(delimiter).from_writer(writer);
    csv.write_record(RESPONSE_COLUMNS)?;
    let mut written = 0;
    for answer in answers {
        for item in answer.items.iter().flatten() {
            let rank = item.rank.to_string();
            csv.write_record([
                answer.user_id.as_str(),
                answer.list_name.as_str(),
                rank.as_str(),
                item.item_id.as_str(),
                item.title.as_deref().unwrap_or_default(),
                item.url.as_deref().unwrap_or_default(),
                item.image_url.as_deref().unwrap_or_default(),
                item.description.as_deref().unwrap_or_default(),
                answer.request_id.as_deref().unwrap_or_default(),
            ])?;
            written += 1;
        }
    }
    csv.flush()?;
    Ok(written)
}

/// Writes `path` atomically: `path.tmp` first, synced, then renamed over `path`.
fn write_atomically(path: &Path, write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        write(&mut file)?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        // Best effort: a half-written temporary file is of no use to anyone.
        let _removed = std::fs::remove_file(&tmp);
    }
    result
}

/// What became of a row.
#[derive(Debug)]
enum Fate {
    Invalid,
    Waiting,
    Ready(Box<RecommendationReady>),
    Failed(String),
}

fn progress_bar(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(u64::try_from(len).unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({per_sec}, eta {eta})") {
        bar.set_style(style);
    }
    bar
}

async fn recommendations(
    args: &RecommendationsArgs,
    strings: &dyn Strings,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    if args.input == args.output {
        return Err(usage("--in and --out name the same file"));
    }
    let bytes = std::fs::read(&args.input).with_context(|| format!("cannot read {}", args.input.display()))?;
    let rows = read_requests(&bytes, args.delimiter).map_err(|e| usage(format!("{}: {e}", args.input.display())))?;
    let schemas = Schemas::load(messages::DEFAULT_MAX_BODY_BYTES).map_err(anyhow::Error::msg)?;
    let mut fates: Vec<(u64, Fate)> = Vec::with_capacity(rows.len());
    let mut bodies: Vec<Option<Vec<u8>>> = Vec::with_capacity(rows.len());
    for row in rows {
        let checked = row.request.and_then(|request| {
            let body = serde_json::to_vec(&request).map_err(|e| format!("cannot encode: {e}"))?;
            schemas
                .check("recommendation.requested", &body)
                .map(|_| body)
                .map_err(|e| e.to_string())
        });
        match checked {
            Ok(body) => {
                fates.push((row.line, Fate::Waiting));
                bodies.push(Some(body));
            }
            Err(problem) => {
                eprintln!("line {}: {problem}", row.line);
                fates.push((row.line, Fate::Invalid));
                bodies.push(None);
            }
        }
    }
    let good = bodies.iter().flatten().count();
    if good > 0 {
        let admin = connect(strings).await?;
        let collected = publish_and_collect(&admin, &mut fates, &bodies, Duration::from_secs(args.timeout)).await;
        admin.close().await;
        collected?;
    }
    let answers: Vec<&RecommendationReady> = fates
        .iter()
        .filter_map(|(_, fate)| match fate {
            Fate::Ready(ready) => Some(ready.as_ref()),
            _ => None,
        })
        .collect();
    let mut items = 0;
    write_atomically(&args.output, |file| {
        items = write_responses(std::io::BufWriter::new(file), args.delimiter, answers.iter().copied())
            .context("cannot write the response file")?;
        Ok(())
    })?;
    let (mut invalid, mut failed, mut timed_out) = (0, 0, 0);
    for (line, fate) in &fates {
        match fate {
            Fate::Invalid => invalid += 1,
            Fate::Failed(error) => {
                eprintln!("line {line}: failed: {error}");
                failed += 1;
            }
            Fate::Waiting => {
                eprintln!("line {line}: no answer within {}s of the last one", args.timeout);
                timed_out += 1;
            }
            Fate::Ready(_) => {}
        }
    }
    writeln!(
        out,
        "rows: {}, answered: {}, items: {items}, malformed: {invalid}, failed: {failed}, timed out: {timed_out}",
        fates.len(),
        answers.len()
    )?;
    writeln!(out, "wrote {items} item rows to {}", args.output.display())?;
    Ok(if invalid + failed + timed_out == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Publishes every good row with its own correlation id and collects the answers until every
/// row has one or none arrived for `idle`.
async fn publish_and_collect(
    admin: &Admin,
    fates: &mut [(u64, Fate)],
    bodies: &[Option<Vec<u8>>],
    idle: Duration,
) -> anyhow::Result<()> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    // The results queue of this run; it sees every recommendation.ready in the namespace and
    // keeps only the answers to this run's correlation ids.
    let queue = admin
        .declare_private_observer(&format!("batch.recommendations.{run}"), &["recommendation.ready"])
        .await
        .context("cannot declare the results queue")?;
    eprintln!("collecting answers on queue {queue}");
    let bar = progress_bar(bodies.iter().flatten().count());
    bar.set_message("published");
    let mut pending: HashMap<String, usize> = HashMap::new();
    for (index, body) in bodies.iter().enumerate() {
        let Some(body) = body else { continue };
        let correlation_id = format!("batch-{run}:{}", fates[index].0);
        let message_id = uuid::Uuid::new_v4().to_string();
        admin
            .publish("recommendation.requested", &message_id, Some(&correlation_id), body)
            .await
            .context("publishing recommendation.requested")?;
        pending.insert(correlation_id, index);
    }
    bar.set_message("answered");
    let mut last_answer = Instant::now();
    while !pending.is_empty() {
        let drained = admin.drain(&queue, 1_000).await.context("reading the results queue")?;
        if drained.is_empty() {
            if last_answer.elapsed() >= idle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for (properties, body) in drained {
            let Some(index) = properties
                .correlation_id()
                .as_ref()
                .and_then(|id| pending.remove(id.as_str()))
            else {
                continue;
            };
            last_answer = Instant::now();
            bar.inc(1);
            fates[index].1 = match serde_json::from_slice::<RecommendationReady>(&body) {
                Ok(ready) if ready.status == ReadyStatus::Ready => Fate::Ready(Box::new(ready)),
                Ok(ready) => Fate::Failed(ready.error.unwrap_or_else(|| "no reason given".to_owned())),
                Err(error) => Fate::Failed(format!("unreadable recommendation.ready: {error}")),
            };
        }
    }
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use messages::recommendation::RecommendedItem;

    use super::*;

    const HEADER: &str = "environment,user_id,list_name,list_size,page_type\n";

    fn rows(text: &str) -> Vec<Row> {
        read_requests(text.as_bytes(), b',').unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(text: &str) -> Vec<(u64, String)> {
        rows(text)
            .into_iter()
            .filter_map(|row| row.request.err().map(|p| (row.line, p)))
            .collect()
    }

    #[test]
    fn good_rows_become_requests_with_their_line_numbers() {
        let rows = rows(&format!(
            "{HEADER}demo,user-1,newsletter_top,3,newsletter\n\n demo , user-2 ,top,100,home\n"
        ));
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
        assert_eq!(
            rows[1].request,
            Ok(RecommendationRequested {
                environment: "demo".into(),
                user_id: "user-2".into(),
                list_name: "top".into(),
                list_size: 100,
                page_type: "home".into(),
                campaign_id: None,
                device_id: None,
            })
        );
    }

    #[test]
    fn a_bad_list_size_is_reported_with_line_and_field() {
        let found = problems(&format!(
            "{HEADER}demo,u1,top,3,home\ndemo,u2,top,ten,home\ndemo,u3,top,0,home\ndemo,u4,top,3,home\n"
        ));
        assert_eq!(
            found,
            [
                (3, r#"list_size: "ten" is not a whole number from 1 to 100"#.to_owned()),
                (4, r#"list_size: "0" is not a whole number from 1 to 100"#.to_owned()),
            ]
        );
    }

    #[test]
    fn every_problem_of_a_row_is_named_and_user_ids_are_not_echoed() {
        let found = problems(&format!("{HEADER}de mo,{},top list,3,\n", "x".repeat(300)));
        let (line, problem) = found.first().cloned().unwrap_or_default();
        assert_eq!(line, 2);
        assert!(problem.starts_with(r#"environment: "de mo""#), "{problem}");
        assert!(problem.contains("user_id: is longer than 256 characters"), "{problem}");
        assert!(problem.contains(r#"list_name: "top list""#), "{problem}");
        assert!(problem.contains("page_type: is empty"), "{problem}");
        assert!(!problem.contains("xxxx"), "{problem}");
    }

    #[test]
    fn short_rows_and_bad_encoding_do_not_stop_the_others() {
        let mut bytes = format!("{HEADER}demo,u1,top\n").into_bytes();
        bytes.extend_from_slice(b"demo,u\xff,top,3,home\n");
        bytes.extend_from_slice(b",,,,\n");
        bytes.extend_from_slice(b"demo,u3,top,3,home\n");
        let rows = read_requests(&bytes, b',').unwrap_or_else(|e| panic!("{e}"));
        let summary: Vec<(u64, bool)> = rows.iter().map(|r| (r.line, r.request.is_ok())).collect();
        assert_eq!(summary, [(2, false), (3, false), (4, false), (5, true)]);
        assert_eq!(rows[0].request, Err("expected 5 fields, found 3".to_owned()));
        assert_eq!(rows[1].request, Err("is not valid UTF-8".to_owned()));
    }

    #[test]
    fn header_order_case_bom_and_optional_columns_are_handled() {
        let text = "\u{feff}Page_Type;LIST_SIZE;list_name;user_id;environment;campaign_id;extra\n\
                    home;2;top;u1;demo;weekly-47;ignored\n";
        let rows = read_requests(text.as_bytes(), b';').unwrap_or_else(|e| panic!("{e}"));
        let request = rows[0].request.clone().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((request.page_type.as_str(), request.list_size), ("home", 2));
        assert_eq!(request.campaign_id.as_deref(), Some("weekly-47"));
    }

    #[test]
    fn a_header_without_the_required_columns_is_refused() {
        let error = read_requests("environment,user_id,list_size\n".as_bytes(), b',').err();
        assert_eq!(
            error.as_deref(),
            Some(
                "line 1: the header lacks the column(s) list_name, page_type; expected \
                 environment,user_id,list_name,list_size,page_type"
            )
        );
        let error = read_requests("environment;user_id\n".as_bytes(), b',').err();
        assert!(error.is_some_and(|e| e.contains("--delimiter ';'")));
    }

    #[test]
    fn responses_have_one_row_per_item_and_quote_as_needed() {
        let item = |rank, id: &str, title: &str| RecommendedItem {
            rank,
            item_id: id.into(),
            title: Some(title.into()),
            url: Some(format!("https://x/{id}")),
            image_url: None,
            description: Some("a; b".into()),
        };
        let ready = RecommendationReady {
            status: ReadyStatus::Ready,
            environment: "demo".into(),
            user_id: "u1".into(),
            list_name: "top".into(),
            campaign_id: None,
            request_id: Some("r-1".into()),
            user_group: Some("froomle".into()),
            version: None,
            items: Some(vec![item(1, "a", "Plain"), item(2, "b", "With, comma")]),
            error: None,
            source_message_id: "m".into(),
        };
        let mut buffer = Vec::new();
        let written = write_responses(&mut buffer, b',', [&ready]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written, 2);
        assert_eq!(
            String::from_utf8_lossy(&buffer),
            "user_id,list_name,rank,item_id,title,url,image_url,description,request_id\n\
             u1,top,1,a,Plain,https://x/a,,a; b,r-1\n\
             u1,top,2,b,\"With, comma\",https://x/b,,a; b,r-1\n"
        );
    }

    #[test]
    fn delimiters_are_comma_or_semicolon() {
        assert_eq!(parse_delimiter(","), Ok(b','));
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert!(parse_delimiter("|").is_err());
    }

    #[test]
    fn the_response_file_is_replaced_atomically() {
        let dir = std::env::temp_dir().join(format!("switchyard-batch-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("responses.csv");
        std::fs::write(&path, "old").unwrap_or_else(|e| panic!("{e}"));
        let failed = write_atomically(&path, |_| Err(anyhow::anyhow!("boom")));
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "old");
        assert!(!dir.join("responses.csv.tmp").exists());
        let written = write_atomically(&path, |file| Ok(file.write_all(b"new")?));
        assert!(written.is_ok());
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "new");
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    }
}
