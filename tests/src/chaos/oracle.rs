//! The oracle every row reports (RELIABILITY.md 3.4, Jepsen and Vector style): which
//! confirmed inputs were lost, which had their side effect more than once, and what appeared
//! that nobody published.
//!
//! For contact-sync a side effect is the contact's state at a destination: the Spotler
//! contact with its external id, the Ecomail subscriber with its address in the list. Both are
//! upserts keyed by that id, so they are counted by distinct final state: a redelivery that
//! repeats the call finds and overwrites the same record, and a second record for one contact
//! would be a duplicate effect. Raw calls per id are reported beside them (a repeated upsert
//! shows up there, harmlessly).

use std::collections::{BTreeMap, BTreeSet};

use mq::admin::DeadLetter;
use serde_json::Value;
use switchyard_sandbox::{Provider, Sandbox};

/// One input the harness published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// AMQP message id.
    pub message_id: String,
    /// The contact id in the body.
    pub contact_id: String,
    /// The e-mail address in the body.
    pub email: String,
}

/// What was published and where results are expected.
#[derive(Debug, Clone, Default)]
pub struct Oracle {
    /// Publishes the broker confirmed.
    pub confirmed: Vec<Published>,
    /// Publishes whose confirm never came (broker crashed or the connection broke): they may
    /// or may not have been enqueued, so they are never counted lost, only checked for
    /// duplicate effects.
    pub indeterminate: Vec<Published>,
    /// Destinations each input must be accounted for at (`spotler`, `ecomail`).
    pub destinations: Vec<String>,
    /// The Ecomail list contacts are subscribed to.
    pub ecomail_list: u64,
}

/// The counts of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Confirmed publishes.
    pub published: usize,
    /// Publishes with an unknown outcome.
    pub indeterminate: usize,
    /// Confirmed inputs with a destination that has neither a result nor a dead letter, or
    /// whose "synced" result has no effect behind it. Pass: 0.
    pub lost: usize,
    /// Contacts with more than one record at a destination. Pass: 0.
    pub duplicate_effects: usize,
    /// Results or effects for inputs nobody published. Pass: 0.
    pub unexpected: usize,
    /// Result messages beyond one per (input, destination): allowed, reported.
    pub duplicate_results: usize,
    /// Dead letters.
    pub dead_letters: usize,
    /// The most effect calls (POST/PUT) one input caused at one destination.
    pub max_raw_calls_per_id: usize,
    /// Up to ten lost message ids, for the failure message.
    pub lost_ids: Vec<String>,
}

impl Report {
    /// Prints the one-line summary `make chaos` shows for the row.
    pub fn print(&self, row: &str) {
        println!(
            "row {row} oracle: published={} indeterminate={} lost={} duplicate_effects={} unexpected={} \
             duplicate_results={} dead_letters={} max_raw_calls_per_id={}",
            self.published,
            self.indeterminate,
            self.lost,
            self.duplicate_effects,
            self.unexpected,
            self.duplicate_results,
            self.dead_letters,
            self.max_raw_calls_per_id
        );
    }
}

/// Whether any string inside `value` equals `needle` (ASCII case-insensitively).
fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.eq_ignore_ascii_case(needle),
        Value::Array(items) => items.iter().any(|item| mentions(item, needle)),
        Value::Object(map) => map.values().any(|item| mentions(item, needle)),
        _ => false,
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl Oracle {
    /// An oracle expecting results at `destinations`, Ecomail list `ecomail_list`.
    pub fn new(destinations: &[&str], ecomail_list: u64) -> Self {
        Self {
            destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
            ecomail_list,
            ..Self::default()
        }
    }

    fn known(&self) -> impl Iterator<Item = &Published> {
        self.confirmed.iter().chain(&self.indeterminate)
    }

    /// Evaluates `results` (`contact.synced` bodies), `dead` letters and the sandbox state.
    pub fn evaluate(&self, results: &[Value], dead: &[DeadLetter], sandbox: &Sandbox) -> Report {
        let mut per_result: BTreeMap<(&str, &str), Vec<&Value>> = BTreeMap::new();
        for result in results {
            per_result
                .entry((text(result, "source_message_id"), text(result, "destination")))
                .or_default()
                .push(result);
        }
        let spotler_contacts = sandbox.spotler_contacts();
        let subscribers: Vec<_> = sandbox
            .ecomail_subscribers()
            .remove(&self.ecomail_list)
            .unwrap_or_default();
        let spotler_records =
            |contact_id: &str| spotler_contacts.iter().filter(|c| c.external_id == contact_id).count();
        let ecomail_records = |email: &str| {
            subscribers
                .iter()
                .filter(|s| s.email.eq_ignore_ascii_case(email))
                .count()
        };
        let effect_calls = |provider: Provider, needle: &str| {
            sandbox
                .calls(provider)
                .iter()
                .filter(|c| c.method == "POST" || c.method == "PUT")
                .filter(|c| c.body.as_ref().is_some_and(|b| mentions(b, needle)))
                .count()
        };

        let mut report = Report {
            published: self.confirmed.len(),
            indeterminate: self.indeterminate.len(),
            dead_letters: dead.len(),
            ..Report::default()
        };
        for input in &self.confirmed {
            let accounted = self.destinations.iter().all(|destination| {
                let results = per_result
                    .get(&(input.message_id.as_str(), destination.as_str()))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let dead_lettered = dead.iter().any(|letter| {
                    letter.message_id.as_deref() == Some(input.message_id.as_str())
                        && letter
                            .scope
                            .as_deref()
                            .is_none_or(|scope| scope.split(',').any(|s| s == destination))
                });
                let synced = results.iter().any(|r| text(r, "status") == "synced");
                let effect = match destination.as_str() {
                    "spotler" => spotler_records(&input.contact_id) > 0,
                    "ecomail" => ecomail_records(&input.email) > 0,
                    _ => true,
                };
                (!results.is_empty() || dead_lettered) && (!synced || effect)
            });
            if !accounted {
                report.lost += 1;
                if report.lost_ids.len() < 10 {
                    report.lost_ids.push(input.message_id.clone());
                }
            }
        }
        for input in self.known() {
            if spotler_records(&input.contact_id) > 1 || ecomail_records(&input.email) > 1 {
                report.duplicate_effects += 1;
            }
            for (provider, needle) in [
                (Provider::Spotler, input.contact_id.as_str()),
                (Provider::Ecomail, input.email.as_str()),
            ] {
                report.max_raw_calls_per_id = report.max_raw_calls_per_id.max(effect_calls(provider, needle));
            }
        }
        let ids: BTreeSet<&str> = self.known().map(|p| p.message_id.as_str()).collect();
        let contacts: BTreeSet<&str> = self.known().map(|p| p.contact_id.as_str()).collect();
        let emails: BTreeSet<String> = self.known().map(|p| p.email.to_ascii_lowercase()).collect();
        report.unexpected = per_result.keys().filter(|(id, _)| !ids.contains(id)).count()
            + spotler_contacts
                .iter()
                .filter(|c| !contacts.contains(c.external_id.as_str()))
                .count()
            + subscribers
                .iter()
                .filter(|s| !emails.contains(&s.email.to_ascii_lowercase()))
                .count();
        report.duplicate_results = per_result.values().map(|r| r.len().saturating_sub(1)).sum();
        report
    }
}
