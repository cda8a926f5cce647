//! Private RabbitMQ nodes for the rows that change broker state (restarts, crashes, alarms,
//! consumer timeouts, stalls, a cluster losing a node). Each node has its own name, AMQP and
//! distribution ports, data, logs, config and Erlang cookie under [`super::work_dir`], so the
//! shared broker on 127.0.0.1:5672 (its cookie, its settings, its data) is never touched.
//!
//! The RabbitMQ scripts are run directly (`/usr/lib/rabbitmq/bin`), as the current user, with
//! `HOME` pointing at the node's directory: the Debian wrappers in `/usr/sbin` would switch to
//! the `rabbitmq` user and the shared node's cookie. Dropping a node stops it (`rabbitmqctl
//! stop`, then SIGKILL of its own pid if that does not work) and removes its files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use super::{free_port, free_port_in, work_dir};

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// A RabbitMQ node of our own.
#[derive(Debug)]
pub struct PrivateNode {
    name: String,
    port: u16,
    dist_port: u16,
    home: PathBuf,
    dir: PathBuf,
    owns_home: bool,
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string().chars().take(8).collect()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A directory with a fresh Erlang cookie, for one node or a cluster.
fn cookie_home(label: &str) -> PathBuf {
    let home = work_dir().join(format!("{label}-{}", short_id()));
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("create {}: {e}", home.display()));
    let cookie = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let path = home.join(".erlang.cookie");
    write(&path, &cookie);
    // Erlang refuses a cookie file others can read.
    let chmod = std::process::Command::new("chmod").arg("400").arg(&path).status();
    assert!(chmod.is_ok_and(|s| s.success()), "chmod {}", path.display());
    home
}

impl PrivateNode {
    /// Starts a single node and waits until it is up.
    pub async fn start(label: &str) -> Self {
        Self::start_with(label, "").await
    }

    /// Starts a single node with `extra` lines appended to its `rabbitmq.conf` (e.g. a TLS
    /// listener) and waits until it is up.
    pub async fn start_with(label: &str, extra: &str) -> Self {
        let home = cookie_home(label);
        let short = format!("chaos-{label}-{}", short_id());
        let node = Self::prepare(&home, &short, true);
        if !extra.is_empty() {
            let path = node.dir.join("rabbitmq.conf");
            let mut config = std::fs::read_to_string(&path).unwrap_or_default();
            config.push_str(extra);
            write(&path, &config);
        }
        node.launch().await;
        node
    }

    /// The node's own directory (for files its configuration refers to).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lays out the files of node `short` under `home` (whose cookie it uses).
    fn prepare(home: &Path, short: &str, owns_home: bool) -> Self {
        let dir = home.join(short);
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        let port = free_port();
        let dist_port = free_port_in(30_000..40_000);
        write(&dir.join("enabled_plugins"), "[].\n");
        write(&dir.join("rabbitmq-env.conf"), "");
        write(&dir.join("advanced.config"), "[].\n");
        write(
            &dir.join("rabbitmq.conf"),
            &format!("listeners.tcp.local = 127.0.0.1:{port}\nlog.file.level = info\n"),
        );
        Self {
            name: format!("{short}@localhost"),
            port,
            dist_port,
            home: home.to_path_buf(),
            dir,
            owns_home,
        }
    }

    fn env(&self, command: &mut Command) {
        command
            .env("HOME", &self.home)
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", self.dir.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", self.dir.join("rabbitmq-env.conf"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
    }

    /// Runs `rabbitmq-server -detached` (without waiting for the boot).
    async fn spawn_server(&self) {
        let mut command = Command::new(SERVER);
        self.env(&mut command);
        let status = command
            .arg("-detached")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        assert!(
            status.is_ok_and(|s| s.success()),
            "{SERVER} -detached for {} (is RabbitMQ installed, and are we root?)",
            self.name
        );
    }

    /// Starts the server and waits until it is up.
    async fn launch(&self) {
        self.spawn_server().await;
        self.wait_started(Duration::from_secs(90)).await;
    }

    /// Waits until the node's `rabbit` application runs.
    pub async fn wait_started(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            // Until the node registers with epmd, await_startup fails at once; retry.
            if self.ctl(&["await_startup", "--timeout", "10"]).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "private node {} did not start within {timeout:?}; see {}",
                self.name,
                self.dir.join("log").display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `rabbitmqctl -n <node> <args>`: stdout, or an error with stderr.
    pub async fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new(CTL);
        self.env(&mut command);
        command
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match tokio::time::timeout(Duration::from_secs(60), command.output()).await {
            Ok(Ok(output)) if output.status.success() => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            Ok(Ok(output)) => Err(format!(
                "rabbitmqctl {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            )),
            Ok(Err(error)) => Err(format!("rabbitmqctl {}: {error}", args.join(" "))),
            Err(_) => Err(format!("rabbitmqctl {}: no answer within 60 s", args.join(" "))),
        }
    }

    /// `rabbitmqctl ... <args>`, panicking with the output when it fails.
    pub async fn must(&self, args: &[&str]) -> String {
        self.ctl(args).await.unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// Evaluates an Erlang expression on the node (`rabbitmqctl eval`).
    pub async fn eval(&self, expression: &str) -> String {
        self.must(&["eval", expression]).await
    }

    /// The node name, e.g. `chaos-row06-1a2b3c4d@localhost`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The Erlang VM's pid (from the node's pid file).
    pub fn beam_pid(&self) -> Option<u32> {
        let path = self.dir.join("mnesia").join(format!("{}.pid", self.name));
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| !stat.contains(") Z "))
                .unwrap_or(false)
    }

    async fn signal(&self, signal: &str) {
        let pid = self
            .beam_pid()
            .unwrap_or_else(|| panic!("{} has no pid file", self.name));
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .await;
        assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} {pid} ({})", self.name);
    }

    /// A hard crash: SIGKILL to the node's VM; returns once it is gone.
    pub async fn kill9(&self) {
        let pid = self.beam_pid();
        self.signal("KILL").await;
        for _ in 0..200 {
            if !pid.is_some_and(Self::alive) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} survived SIGKILL", self.name);
    }

    /// Starts the node again (after [`Self::kill9`]) with the same data, and waits for it.
    pub async fn restart(&self) {
        self.launch().await;
    }

    /// Freezes the node's VM (SIGSTOP): sockets stay open, nothing is answered.
    pub async fn freeze(&self) {
        self.signal("STOP").await;
    }

    /// Resumes a frozen node.
    pub async fn thaw(&self) {
        self.signal("CONT").await;
    }

    /// Stops the node: `rabbitmqctl stop`, then SIGKILL of its own VM if it is still there.
    fn stop_now(&self) {
        let Some(pid) = self.beam_pid() else { return };
        if !Self::alive(pid) {
            return;
        }
        // A frozen node must be resumed to stop cleanly.
        let _resumed = std::process::Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status();
        let mut command = std::process::Command::new("timeout");
        command
            .args(["30", CTL, "-n", &self.name, "stop"])
            .env("HOME", &self.home)
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _stopped = command.status();
        if Self::alive(pid) {
            let _killed = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        self.stop_now();
        let dir = if self.owns_home { &self.home } else { &self.dir };
        let _removed = std::fs::remove_dir_all(dir);
    }
}

/// Several private nodes joined into one cluster (they share a cookie).
#[derive(Debug)]
pub struct PrivateCluster {
    /// The nodes; the first is the one the others joined.
    pub nodes: Vec<PrivateNode>,
    home: PathBuf,
}

impl PrivateCluster {
    /// Starts `size` nodes (booting in parallel) and joins nodes 2.. to the first.
    pub async fn start(label: &str, size: usize) -> Self {
        let home = cookie_home(label);
        let id = short_id();
        let nodes: Vec<PrivateNode> = (0..size)
            .map(|i| PrivateNode::prepare(&home, &format!("chaos-{label}{i}-{id}"), false))
            .collect();
        let cluster = Self { nodes, home };
        for node in &cluster.nodes {
            node.spawn_server().await;
        }
        for node in &cluster.nodes {
            node.wait_started(Duration::from_secs(120)).await;
        }
        let first = cluster.nodes[0].name().to_owned();
        for node in &cluster.nodes[1..] {
            node.must(&["stop_app"]).await;
            node.must(&["join_cluster", &first]).await;
            node.must(&["start_app"]).await;
            node.wait_started(Duration::from_secs(60)).await;
        }
        cluster
    }

    /// Every node's AMQP URL, comma-separated (the cluster form of `AMQP_URL`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(PrivateNode::amqp_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&PrivateNode> {
        self.nodes.iter().find(|node| node.name() == name)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        // Stop the nodes while their cookie is still there, then remove everything.
        for node in self.nodes.drain(..) {
            drop(node);
        }
        let _removed = std::fs::remove_dir_all(&self.home);
    }
}
