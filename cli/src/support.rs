//! Shared pieces of the commands: the usage error (exit 64), the `--namespace` overlay on the
//! environment, connecting, and plain-text tables.

use std::fmt;

use anyhow::Context as _;
use mq::admin::Admin;
use settings::{ConfigError, MqConfig, Strings};

/// A mistake in how the CLI was called that clap cannot see (exit 64).
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error as an `anyhow::Error`.
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// Whether `error` means "called wrongly or configured wrongly" (exit 64).
pub(crate) fn is_usage(error: &anyhow::Error) -> bool {
    error.downcast_ref::<UsageError>().is_some() || error.downcast_ref::<ConfigError>().is_some()
}

/// Whether `error` is stdout closed under us (`switchyard dlq list | head`): not a failure.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The environment with `SWITCHYARD_NAMESPACE` replaced by `--namespace` when it is given.
pub(crate) struct WithNamespace<'a> {
    base: &'a dyn Strings,
    namespace: Option<&'a str>,
}

impl<'a> WithNamespace<'a> {
    /// Overlays `namespace` (if any) on `base`.
    pub(crate) fn new(base: &'a dyn Strings, namespace: Option<&'a str>) -> Self {
        Self { base, namespace }
    }
}

impl Strings for WithNamespace<'_> {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.namespace {
            Some(namespace) if name == "SWITCHYARD_NAMESPACE" => {
                Ok(Some(namespace.trim().to_owned()).filter(|n| !n.is_empty()))
            }
            _ => self.base.get(name),
        }
    }
}

/// Checks a `--namespace` value with the rule `SWITCHYARD_NAMESPACE` follows.
pub(crate) fn parse_namespace(raw: &str) -> Result<String, String> {
    if raw.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        Ok(raw.to_owned())
    } else {
        Err("use only letters, digits, `-`, `_` and `.`".to_owned())
    }
}

/// Reads the broker settings and connects.
pub(crate) async fn connect(strings: &dyn Strings) -> anyhow::Result<Admin> {
    let config = MqConfig::from_strings(strings)?;
    Admin::connect(&config)
        .await
        .context("connecting to the broker (AMQP_URL)")
}

/// Formats rows as a left-aligned table with a header line; the last column is not padded.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or_default();
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` on one line, cut to `max` characters (the last one an ellipsis when cut).
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn namespace_flag_overrides_the_environment() {
        let env: HashMap<&str, &str> = [("SWITCHYARD_NAMESPACE", "from-env"), ("AMQP_URL", "amqp://h")].into();
        let strings = WithNamespace::new(&env, Some("from-flag"));
        assert_eq!(strings.get("SWITCHYARD_NAMESPACE"), Ok(Some("from-flag".to_owned())));
        assert_eq!(strings.get("AMQP_URL"), Ok(Some("amqp://h".to_owned())));
        let empty = WithNamespace::new(&env, Some(""));
        assert_eq!(empty.get("SWITCHYARD_NAMESPACE"), Ok(None));
        let unset = WithNamespace::new(&env, None);
        assert_eq!(unset.get("SWITCHYARD_NAMESPACE"), Ok(Some("from-env".to_owned())));
    }

    #[test]
    fn namespace_flag_rejects_characters_the_broker_names_cannot_hold() {
        assert!(parse_namespace("cli-test_1.a").is_ok());
        assert!(parse_namespace("bad name").is_err());
        assert!(parse_namespace("a/b").is_err());
    }

    #[test]
    fn table_aligns_columns_and_leaves_the_last_unpadded() {
        let rows = vec![vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()]];
        assert_eq!(
            table(&["first", "b", "c"], &rows),
            "first  b           c\na      long value  x\n"
        );
    }

    #[test]
    fn truncate_cuts_long_text_to_the_limit_on_one_line() {
        assert_eq!(truncate("short", 80), "short");
        assert_eq!(truncate("two\nlines", 80), "two lines");
        let cut = truncate(&"é".repeat(100), 80);
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.ends_with('…'));
    }
}
