//! `amqps://` end to end: a private node with a TLS listener (a throwaway CA and a server
//! certificate for `localhost` made with `openssl`), and contact-sync connecting to it with
//! certificate verification on, trusting that CA through `SSL_CERT_FILE`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use integration_tests::chaos::{PrivateNode, Rig, assert_clean, check_row, free_port, work_dir};
use tokio::process::Command;

use crate::{LOG, SETTLE, gate, wait_ready};

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _removed = std::fs::remove_dir_all(&self.0);
    }
}

async fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for `localhost` / 127.0.0.1 signed by it.
async fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=switchyard chaos CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    )
    .await;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    )
    .await;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("server.ext: {e}"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_worker_consumes_through_a_tls_listener() {
    gate();
    let certs = TempDir(work_dir().join(format!("tls-{}", uuid::Uuid::new_v4().simple())));
    std::fs::create_dir_all(&certs.0).unwrap_or_else(|e| panic!("{e}"));
    certificates(&certs.0).await;
    let tls_port = free_port();
    let path = |name: &str| certs.0.join(name).display().to_string();
    let node = PrivateNode::start_with(
        "tls",
        &format!(
            "listeners.ssl.default = 127.0.0.1:{tls_port}\nssl_options.cacertfile = {}\n\
             ssl_options.certfile = {}\nssl_options.keyfile = {}\nssl_options.verify = verify_none\n\
             ssl_options.fail_if_no_peer_cert = false\n",
            path("ca.pem"),
            path("server.pem"),
            path("server.key")
        ),
    )
    .await;
    let worker_url = format!("amqps://guest:guest@localhost:{tls_port}/%2f");
    let mut rig = Rig::start(
        "tls",
        &node.amqp_url(),
        &worker_url,
        &[("SSL_CERT_FILE", &path("ca.pem"))],
    )
    .await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_ready(&worker, Duration::from_secs(30)).await;
    let connections = node
        .must(&["list_connections", "ssl", "ssl_protocol", "name", "--silent"])
        .await;
    // The harness connects in plain AMQP; the worker's connections are the TLS port's.
    let to_tls_port = format!("-> 127.0.0.1:{tls_port}");
    let tls_connections = connections
        .lines()
        .filter(|line| line.starts_with("true") && line.ends_with(&to_tls_port))
        .count();
    rig.publish_contacts(20).await;
    let report = check_row("amqps", rig.settle(SETTLE).await);
    println!(
        "row amqps: the worker's {tls_connections} broker connections use TLS ({}); 20 contacts synced",
        connections
            .lines()
            .find(|line| line.ends_with(&to_tls_port))
            .and_then(|line| line.split_whitespace().nth(1))
            .unwrap_or("?")
    );
    assert_eq!(tls_connections, 2, "both connections over TLS: {connections}");
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("amqps", "worker logs", &logs, &[]);
    rig.finish().await;
}
