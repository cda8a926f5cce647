//! A worker binary run as a child process: its stderr captured line by line with arrival
//! times, signals sent by pid, `/metrics` and `/readyz` on a port of its own, RSS and open
//! sockets read from the system.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{free_port, local};

/// One line the worker wrote to stderr, with when the harness read it.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// When it arrived.
    pub at: Instant,
    /// The line (JSON with `LOG_FORMAT=json`).
    pub text: String,
}

/// A running worker binary.
#[derive(Debug)]
pub struct WorkerProcess {
    name: String,
    child: Child,
    pid: u32,
    metrics: SocketAddr,
    log: Arc<Mutex<Vec<LogLine>>>,
    reader: JoinHandle<()>,
    http: reqwest::Client,
}

fn lock(log: &Mutex<Vec<LogLine>>) -> std::sync::MutexGuard<'_, Vec<LogLine>> {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WorkerProcess {
    /// Starts `binary` (built by `cargo build --bins`) with exactly `env` plus `METRICS_ADDR`
    /// on a free port, `LOG_FORMAT=json` and `RUST_LOG=log_level`.
    pub fn spawn(binary: &str, env: &HashMap<String, String>, log_level: &str) -> Self {
        let metrics = local(free_port());
        let mut child = Command::new(crate::binary(binary))
            .env_clear()
            .envs(env)
            .env("METRICS_ADDR", metrics.to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        let pid = child.id().unwrap_or_default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = match child.stderr.take() {
            Some(stderr) => {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stderr).lines();
                    while let Ok(Some(text)) = lines.next_line().await {
                        lock(&log).push(LogLine {
                            at: Instant::now(),
                            text,
                        });
                    }
                })
            }
            None => tokio::spawn(async {}),
        };
        Self {
            name: binary.to_owned(),
            child,
            pid,
            metrics,
            log,
            reader,
            http: super::http_client(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` (`TERM`, `KILL`, `STOP`, ...) to the process, by pid.
    pub async fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .await;
        assert!(
            sent.is_ok_and(|s| s.success()),
            "kill -{signal} {} ({})",
            self.pid,
            self.name
        );
    }

    /// SIGKILL, then waits until the process is gone.
    pub async fn kill9(&mut self) {
        if let Err(error) = self.child.start_kill() {
            panic!("kill -9 {} ({}): {error}", self.pid, self.name);
        }
        let _status = self.child.wait().await;
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Whether `/readyz` answers 200 (connected to the broker, consuming).
    pub async fn is_ready(&self) -> bool {
        let url = format!("http://{}/readyz", self.metrics);
        matches!(
            self.http.get(url).timeout(Duration::from_secs(2)).send().await,
            Ok(response) if response.status().is_success()
        )
    }

    /// Waits up to `timeout` for `/readyz`; returns when it became ready.
    pub async fn wait_ready(&self, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_ready().await {
                return Some(Instant::now());
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `/metrics` text (empty when the endpoint does not answer).
    pub async fn metrics_text(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics);
        match self.http.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The sum of a metric's samples whose labels include all of `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sum_samples(&self.metrics_text().await, name, labels)
    }

    /// Resident memory in KiB (from `/proc`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
    }

    /// Established TCP connections of this process to `127.0.0.1:port` (from `ss`).
    pub async fn sockets_to(&self, port: u16) -> usize {
        let output = Command::new("ss")
            .args(["-Htnp", "state", "established", "dst", &format!("127.0.0.1:{port}")])
            .output()
            .await
            .unwrap_or_else(|e| panic!("ss: {e}"));
        let needle = format!("pid={},", self.pid);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.contains(&needle))
            .count()
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<LogLine> {
        lock(&self.log).clone()
    }

    /// Every log line so far, joined.
    pub fn logs(&self) -> String {
        lock(&self.log)
            .iter()
            .map(|line| line.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits up to `timeout` for a line containing `needle` that arrived after `since`.
    pub async fn wait_log(&self, needle: &str, since: Instant, timeout: Duration) -> Option<LogLine> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = lock(&self.log)
                .iter()
                .find(|line| line.at >= since && line.text.contains(needle))
                .cloned();
            if found.is_some() {
                return found;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process (SIGKILL if still running) and returns everything it logged.
    pub async fn finish(mut self) -> String {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill9().await;
        }
        // The reader ends at EOF; give it a moment to take the last lines.
        let _read = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
        self.logs()
    }
}

impl Drop for WorkerProcess {
    /// `CHAOS_KEEP_LOGS=<dir>` keeps every worker's log for a post-mortem, also when a row
    /// fails half-way (the child itself is killed by `kill_on_drop`).
    fn drop(&mut self) {
        if let Some(dir) = std::env::var_os("CHAOS_KEEP_LOGS") {
            let path = std::path::Path::new(&dir).join(format!("{}-{}.log", self.name, self.pid));
            let logs = self.logs();
            if std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, logs))
                .is_err()
            {
                eprintln!("could not keep the log in {}", path.display());
            }
        }
    }
}

/// Sums the samples of `name` in Prometheus text whose labels include every pair of `labels`.
pub fn sum_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = metric == name && labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            if matches { value.parse::<f64>().ok() } else { None }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_matching_samples_only() {
        let text = "# HELP x y\nx_total{a=\"1\",b=\"2\"} 3\nx_total{a=\"1\",b=\"3\"} 4\nx_total{a=\"2\"} 5\ny 9\n";
        assert_eq!(sum_samples(text, "x_total", &[("a", "1")]), 7.0);
        assert_eq!(sum_samples(text, "x_total", &[]), 12.0);
        assert_eq!(sum_samples(text, "y", &[]), 9.0);
        assert_eq!(sum_samples(text, "z", &[]), 0.0);
    }
}
