//! `switchyard validate`: checks message files against the bundled schemas, as workers do.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use messages::Schemas;

use crate::message;

/// Arguments of `switchyard validate`.
#[derive(Debug, Args)]
#[command(after_help = "Prints `ok <file>` or `invalid <file>: <error>` per file; exits 1 if any is invalid.")]
pub(crate) struct ValidateArgs {
    /// Message files (bare bodies or envelopes); a directory means every *.json under it.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Message type; otherwise from the envelope or the `examples/<type>/` directory.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
}

/// Loads the bundled schemas.
pub(crate) fn schemas() -> anyhow::Result<Schemas> {
    Schemas::load(messages::DEFAULT_MAX_BODY_BYTES).map_err(|e| anyhow::anyhow!("bundled schemas are broken: {e}"))
}

/// Validates one file: its type and, on success, the prepared message.
pub(crate) fn check_file(schemas: &Schemas, path: &Path, flag_type: Option<&str>) -> Result<message::Prepared, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let prepared = message::prepare(bytes, flag_type, Some(path))?;
    schemas
        .check(&prepared.kind, &prepared.body)
        .map_err(|e| format!("{}: {e}", prepared.kind))?;
    Ok(prepared)
}

/// Runs `switchyard validate`.
pub(crate) fn run(args: &ValidateArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let schemas = schemas()?;
    let mut n_invalid = 0usize;
    for arg in &args.files {
        let files = message::json_files(arg).with_context(|| format!("cannot list {}", arg.display()))?;
        for file in files {
            match check_file(&schemas, &file, args.kind.as_deref()) {
                Ok(_) => writeln!(out, "ok {}", file.display())?,
                Err(error) => {
                    n_invalid += 1;
                    writeln!(out, "invalid {}: {error}", file.display())?;
                }
            }
        }
    }
    Ok(if n_invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn shipped_examples_are_valid() {
        let schemas = schemas().unwrap_or_else(|e| panic!("{e}"));
        let files = message::json_files(&workspace().join("schemas/examples")).unwrap_or_default();
        assert!(!files.is_empty());
        for file in files {
            assert!(check_file(&schemas, &file, None).is_ok(), "{}", file.display());
        }
    }

    #[test]
    fn shipped_invalid_samples_name_the_path_and_problem() {
        let schemas = schemas().unwrap_or_else(|e| panic!("{e}"));
        let file = workspace().join("schemas/invalid/contact.changed.bad-email.json");
        let error = check_file(&schemas, &file, Some("contact.changed"))
            .err()
            .unwrap_or_default();
        assert!(error.contains("at /email"), "{error}");
    }
}
