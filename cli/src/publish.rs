//! `switchyard publish`: publishes JSON messages to the main exchange with confirms, after
//! validating them against their schema (unless `--raw`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use settings::Strings;
use tokio::io::AsyncReadExt as _;

use crate::message::{self, Prepared};
use crate::support::{connect, usage};
use crate::validate::schemas;

/// Arguments of `switchyard publish`.
#[derive(Debug, Args)]
#[command(after_help = "The type (= routing key) comes from --type, an envelope file \
    {\"type\", \"message_id\", \"correlation_id\", \"body\"}, or the directory when the file lives under \
    schemas/examples/<type>/. Nothing is published when any message is invalid. Prints \
    `published <type> <message_id>` per message.")]
pub(crate) struct PublishArgs {
    /// Message type and routing key, e.g. `contact.changed`.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// AMQP message_id (the idempotency key); default: the envelope's, else a fresh UUID.
    #[arg(long, value_name = "ID")]
    message_id: Option<String>,
    /// AMQP correlation_id; default: the envelope's, else none.
    #[arg(long, value_name = "ID")]
    correlation_id: Option<String>,
    /// Publish the file bytes as they are, without envelope parsing or validation (needs --type).
    #[arg(long)]
    raw: bool,
    /// A JSON file, a directory (every *.json under it, sorted), or `-` for standard input.
    #[arg(value_name = "FILE|DIR|-")]
    input: PathBuf,
}

/// One message to publish and where it came from.
#[derive(Debug)]
struct Ready {
    source: String,
    message: Prepared,
}

async fn read_inputs(input: &Path) -> anyhow::Result<Vec<(String, Option<PathBuf>, Vec<u8>)>> {
    if input.as_os_str() == "-" {
        let mut bytes = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut bytes)
            .await
            .context("cannot read standard input")?;
        return Ok(vec![("-".to_owned(), None, bytes)]);
    }
    let files = message::json_files(input).with_context(|| format!("cannot list {}", input.display()))?;
    if files.is_empty() {
        return Err(usage(format!("{} holds no *.json file", input.display())));
    }
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        out.push((file.display().to_string(), Some(file), bytes));
    }
    Ok(out)
}

/// Prepares and (unless raw) validates every input; any invalid one fails the whole batch.
fn prepare_all(args: &PublishArgs, inputs: Vec<(String, Option<PathBuf>, Vec<u8>)>) -> anyhow::Result<Vec<Ready>> {
    if args.raw {
        let kind = args
            .kind
            .clone()
            .ok_or_else(|| usage("--raw needs --type (the routing key to publish to)"))?;
        return Ok(inputs
            .into_iter()
            .map(|(source, _, body)| Ready {
                source,
                message: Prepared {
                    kind: kind.clone(),
                    message_id: None,
                    correlation_id: None,
                    body,
                },
            })
            .collect());
    }
    let schemas = schemas()?;
    let mut ready = Vec::with_capacity(inputs.len());
    let mut problems = Vec::new();
    for (source, path, bytes) in inputs {
        let prepared = message::prepare(bytes, args.kind.as_deref(), path.as_deref())
            .map_err(|e| usage(format!("{source}: {e}")))?;
        match schemas.check(&prepared.kind, &prepared.body) {
            Ok(_) => ready.push(Ready {
                source,
                message: prepared,
            }),
            Err(error) => problems.push(format!("invalid {source}: {}: {error}", prepared.kind)),
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        anyhow::bail!(
            "{}\nrefusing to publish: {n} invalid message(s), nothing was published",
            problems.join("\n")
        );
    }
    Ok(ready)
}

/// Runs `switchyard publish`.
pub(crate) async fn run(args: PublishArgs, strings: &dyn Strings, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let inputs = read_inputs(&args.input).await?;
    if inputs.len() > 1 && args.message_id.is_some() {
        return Err(usage("--message-id names one message, but the directory holds several"));
    }
    let ready = prepare_all(&args, inputs)?;
    let admin = connect(strings).await?;
    for (n_published, Ready { source, message }) in ready.into_iter().enumerate() {
        let message_id = args
            .message_id
            .clone()
            .or(message.message_id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let correlation_id = args.correlation_id.clone().or(message.correlation_id);
        if let Err(error) = admin
            .publish(&message.kind, &message_id, correlation_id.as_deref(), &message.body)
            .await
        {
            admin.close().await;
            return Err(anyhow::Error::new(error).context(format!(
                "publishing {source} failed after {n_published} published message(s)"
            )));
        }
        writeln!(out, "published {} {message_id}", message.kind)?;
    }
    admin.close().await;
    Ok(ExitCode::SUCCESS)
}
