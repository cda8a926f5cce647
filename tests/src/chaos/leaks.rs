//! Row 25: what must never appear in logs, dead-letter texts or metrics: API keys and secrets,
//! the AMQP password, raw e-mail addresses. [`BrokerUser`] is a throwaway user on the shared
//! broker whose password is recognizable in a log, deleted when dropped.

use std::process::Stdio;

use tokio::process::Command;

/// Substrings shaped like an e-mail address, as the regex `[^ "]+@[^ "]+\.[a-z]+` finds
/// them: a run of characters other than space and `"` before an `@`, and after it a run that
/// contains a `.` (not first) followed by a lowercase ASCII letter. No exclusions: the node
/// names and URLs Switchyard logs (`rabbit@localhost`, `amqp://host:port`) do not match.
pub fn email_like(text: &str) -> Vec<String> {
    let stop = |c: char| c == ' ' || c == '"';
    let mut found = Vec::new();
    for (at, _) in text.match_indices('@') {
        let (before, after) = text.split_at(at);
        let local = before.rsplit(stop).next().unwrap_or_default();
        let domain = after
            .strip_prefix('@')
            .unwrap_or_default()
            .split(stop)
            .next()
            .unwrap_or_default();
        let chars: Vec<char> = domain.chars().collect();
        let has_tld = (1..chars.len().saturating_sub(1)).any(|i| chars[i] == '.' && chars[i + 1].is_ascii_lowercase());
        if !local.is_empty() && has_tld {
            found.push(format!("{local}@{domain}"));
        }
    }
    found
}

/// [`email_like`] matches that are not masked: a local part with `*` in it (`j***@example.com`)
/// is the redacted form the design asks for, not a raw address.
pub fn raw_emails(text: &str) -> Vec<String> {
    email_like(text)
        .into_iter()
        .filter(|found| !found.split('@').next().unwrap_or_default().contains('*'))
        .collect()
}

/// The `secrets` that occur in `text`.
pub fn leaked_secrets<'a>(text: &str, secrets: &[&'a str]) -> Vec<&'a str> {
    secrets
        .iter()
        .copied()
        .filter(|secret| !secret.is_empty() && text.contains(secret))
        .collect()
}

/// The sandbox credentials the workers are given: none may appear anywhere.
pub const SANDBOX_SECRETS: &[&str] = &[
    switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_KEY,
    switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_SECRET,
    switchyard_sandbox::DEFAULT_ECOMAIL_API_KEY,
    switchyard_sandbox::DEFAULT_SALESMANAGO_API_SECRET,
    switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_TOKEN,
    switchyard_sandbox::DEFAULT_BLOOMREACH_SECRET,
    switchyard_sandbox::DEFAULT_FROOMLE_CLIENT_SECRET,
];

/// Asserts that `text` (logs, dead-letter texts, metrics) holds none of the sandbox secrets,
/// none of `extra` (e.g. an AMQP password) and no raw e-mail address; prints the check.
pub fn assert_clean(row: &str, what: &str, text: &str, extra: &[&str]) {
    let secrets: Vec<&str> = SANDBOX_SECRETS.iter().chain(extra).copied().collect();
    let leaked = leaked_secrets(text, &secrets);
    assert!(leaked.is_empty(), "row {row}: {what} contain secrets: {leaked:?}");
    let addresses = raw_emails(text);
    assert!(
        addresses.is_empty(),
        "row {row}: {what} contain e-mail addresses: {:?}",
        addresses.iter().take(5).collect::<Vec<_>>()
    );
    println!(
        "row {row} leak check: {what}: {} lines, 0 secrets, 0 e-mail addresses",
        text.lines().count()
    );
}

/// A broker user on the shared broker, allowed only this namespace's names, with a password
/// no log may contain. Deleted when dropped.
#[derive(Debug)]
pub struct BrokerUser {
    /// User name.
    pub name: String,
    /// Password (`pw-<uuid>`).
    pub password: String,
}

async fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl BrokerUser {
    /// Creates the user with permissions on `namespace`'s exchanges and queues only (and the
    /// default exchange, which retry copies go through).
    pub async fn create(namespace: &str) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let user = Self {
            name: format!("chaos-{suffix}"),
            password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
        };
        rabbitmqctl(&["add_user", &user.name, &user.password])
            .await
            .unwrap_or_else(|e| panic!("add_user: {e}"));
        let own = format!("^{}\\..*", namespace.replace('.', "\\."));
        let write = format!("^({}\\..*|amq\\.default)$", namespace.replace('.', "\\."));
        rabbitmqctl(&["set_permissions", "-p", "/", &user.name, &own, &write, &own])
            .await
            .unwrap_or_else(|e| panic!("set_permissions: {e}"));
        user
    }

    /// `amqp://<user>:<password>@127.0.0.1:5672/%2f`.
    pub fn amqp_url(&self) -> String {
        format!("amqp://{}:{}@127.0.0.1:5672/%2f", self.name, self.password)
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _deleted = std::process::Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_addresses_like_the_regex() {
        assert_eq!(email_like(r#"{"to":"jana.n@example.cz"}"#), ["jana.n@example.cz"]);
        assert_eq!(email_like("mail j***@example.com now"), ["j***@example.com"]);
        assert!(email_like("rabbit@localhost and amqp://guest@127.0.0.1:5672").is_empty());
        assert!(email_like("@example.com a@b").is_empty());
        assert!(raw_emails("mail j***@example.com now").is_empty());
        assert_eq!(raw_emails("x jana@example.com"), ["jana@example.com"]);
    }

    #[test]
    fn finds_secrets() {
        assert_eq!(leaked_secrets("key=abc123 ok", &["abc123", "zzz", ""]), ["abc123"]);
    }
}
