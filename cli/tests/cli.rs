//! The `switchyard` binary against the real broker (AMQP_URL, default 127.0.0.1:5672), each
//! test in its own namespace, which is deleted afterwards.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use mq::admin::Admin;
use mq::consumer::WorkerSpec;
use settings::MqConfig;

/// A unique namespace, removed from the broker on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    fn new() -> Self {
        Self {
            name: format!("cli-test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Runs `switchyard <args>` in this namespace from the workspace root.
    fn run(&self, args: &[&str]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .env("SWITCHYARD_NAMESPACE", &self.name)
            .env_remove("SWITCHYARD_RETRY_TIERS")
            .env_remove("SWITCHYARD_DELIVERY_LIMIT")
            .current_dir(workspace())
            .output();
        output.unwrap_or_else(|e| panic!("cannot run switchyard: {e}"))
    }

    /// The depth `switchyard status` shows for `queue` (without the namespace prefix).
    fn depth(&self, queue: &str) -> Option<u32> {
        let output = self.run(&["status"]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let full = format!("{}.{queue}", self.name);
        stdout(&output).lines().find_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells.get(1) == Some(&full.as_str()))
                .then(|| cells.get(2).and_then(|n| n.parse().ok()))
                .flatten()
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        let strings: HashMap<String, String> = std::env::vars()
            .chain([("SWITCHYARD_NAMESPACE".to_owned(), self.name.clone())])
            .collect();
        runtime.block_on(async {
            let Ok(config) = MqConfig::from_strings(&strings) else {
                return;
            };
            let Ok(admin) = Admin::connect(&config).await else {
                return;
            };
            let defaults: HashMap<&str, &str> = HashMap::new();
            // Every worker `topology declare` (without --worker) creates queues for.
            let workers = [
                (contact_sync::config::WORKER, contact_sync::config::ROUTING_KEYS),
                (loyalty_events::config::WORKER, loyalty_events::config::ROUTING_KEYS),
                (voucher_events::config::WORKER, voucher_events::config::ROUTING_KEYS),
                (recommendations::config::WORKER, recommendations::config::ROUTING_KEYS),
            ];
            let topologies: Vec<_> = workers
                .iter()
                .filter_map(|(worker, keys)| WorkerSpec::from_strings(&defaults, worker, keys, 32).ok())
                .map(|spec| spec.topology)
                .collect();
            let _removed = admin.remove_namespace(&topologies, &[]).await;
            admin.close().await;
        });
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn declared_topology_verifies() {
    let ns = Namespace::new();
    let before = ns.run(&["topology", "verify"]);
    assert_eq!(
        before.status.code(),
        Some(1),
        "an empty namespace must drift: {}",
        text(&before)
    );
    assert!(stdout(&before).contains("missing"), "{}", text(&before));

    let declare = ns.run(&["topology", "declare", "--worker", "contact-sync"]);
    assert_eq!(declare.status.code(), Some(0), "{}", text(&declare));
    let verify = ns.run(&["topology", "verify", "--worker", "contact-sync"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(stdout(&verify).contains("topology matches"), "{}", text(&verify));
}

#[test]
fn invalid_file_is_refused_with_the_json_path_and_nothing_is_published() {
    let ns = Namespace::new();
    assert_eq!(ns.run(&["topology", "declare"]).status.code(), Some(0));
    let publish = ns.run(&[
        "publish",
        "--type",
        "contact.changed",
        "schemas/invalid/contact.changed.bad-email.json",
    ]);
    assert_eq!(publish.status.code(), Some(1), "{}", text(&publish));
    let stderr = String::from_utf8_lossy(&publish.stderr);
    assert!(stderr.contains("at /email"), "{}", text(&publish));
    assert!(stderr.contains("contact.changed.bad-email.json"), "{}", text(&publish));
    assert!(!stdout(&publish).contains("published"), "{}", text(&publish));
    assert_eq!(ns.depth("contact-sync"), Some(0));
}

#[test]
fn published_example_shows_in_the_work_queue() {
    let ns = Namespace::new();
    assert_eq!(ns.run(&["topology", "declare"]).status.code(), Some(0));
    let publish = ns.run(&[
        "publish",
        "--message-id",
        "cli-test-1",
        "schemas/examples/contact.changed/new-customer.json",
    ]);
    assert_eq!(publish.status.code(), Some(0), "{}", text(&publish));
    assert_eq!(stdout(&publish).trim(), "published contact.changed cli-test-1");
    assert_eq!(ns.depth("contact-sync"), Some(1));
    assert_eq!(ns.depth("contact-sync.dead"), Some(0));
    assert_eq!(ns.depth("switchyard.unroutable"), Some(0));
}

#[test]
fn raw_publish_to_an_unbound_key_lands_in_unroutable() {
    let ns = Namespace::new();
    assert_eq!(ns.run(&["topology", "declare"]).status.code(), Some(0));
    let publish = ns.run(&[
        "publish",
        "--raw",
        "--type",
        "contact.chnaged",
        "schemas/invalid/contact.changed.truncated.json",
    ]);
    assert_eq!(publish.status.code(), Some(0), "{}", text(&publish));
    assert_eq!(ns.depth("switchyard.unroutable"), Some(1));
    assert_eq!(ns.depth("contact-sync"), Some(0));
}

#[test]
fn shipped_examples_validate() {
    let ns = Namespace::new();
    let validate = ns.run(&["validate", "schemas/examples"]);
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    assert!(stdout(&validate).lines().count() >= 5, "{}", text(&validate));
    assert!(
        stdout(&validate).lines().all(|l| l.starts_with("ok ")),
        "{}",
        text(&validate)
    );
}

#[test]
fn shipped_invalid_samples_fail_validation() {
    let ns = Namespace::new();
    let validate = ns.run(&["validate", "schemas/invalid"]);
    assert_eq!(validate.status.code(), Some(1), "{}", text(&validate));
    assert!(
        stdout(&validate).lines().all(|l| l.starts_with("invalid ")),
        "{}",
        text(&validate)
    );
}

#[test]
fn usage_mistakes_exit_64() {
    let ns = Namespace::new();
    let cases: [&[&str]; 5] = [
        &["dlq", "purge", "--worker", "contact-sync"],
        &["status", "--worker", "no-such-worker"],
        &["publish", "--raw", "schemas/examples/contact.changed/new-customer.json"],
        &["dlq", "show", "--worker", "contact-sync"],
        &["no-such-command"],
    ];
    for args in cases {
        let output = ns.run(args);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {}", text(&output));
    }
    let purge = ns.run(&["dlq", "purge", "--worker", "contact-sync"]);
    assert!(
        String::from_utf8_lossy(&purge.stderr).contains("--yes"),
        "{}",
        text(&purge)
    );
}

#[test]
fn empty_dead_letter_queue_lists_nothing_and_replays_nothing() {
    let ns = Namespace::new();
    assert_eq!(ns.run(&["topology", "declare"]).status.code(), Some(0));
    let list = ns.run(&["dlq", "list", "--worker", "contact-sync", "--json"]);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list));
    assert_eq!(stdout(&list).trim(), "[]");
    let replay = ns.run(&["dlq", "replay", "--worker", "contact-sync", "--dry-run"]);
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay));
    assert_eq!(stdout(&replay).trim(), "would replay 0");
}
