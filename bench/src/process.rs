//! Worker processes: the release binaries started with a chosen environment, their resident
//! memory read from `/proc/<pid>/status`, and a graceful stop (SIGTERM, then a kill after a
//! deadline).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::process::{Child, Command};

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rss {
    /// `VmRSS`: resident now.
    pub(crate) current_kib: u64,
    /// `VmHWM`: the peak since the process started.
    pub(crate) peak_kib: u64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux the bench
/// runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time (user + system, all threads) from the text of `/proc/<pid>/stat`.
pub(crate) fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    parse_cpu_times(stat).map(|t| t.user + t.system)
}

/// CPU time of a process, split into user and system (kernel) time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuTimes {
    /// Seconds in user space.
    pub(crate) user: f64,
    /// Seconds in the kernel on its behalf (system calls, page faults).
    pub(crate) system: f64,
}

/// Parses utime and stime out of `/proc/<pid>/stat`.
pub(crate) fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the `)`.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(CpuTimes {
        user: utime as f64 / TICKS_PER_SECOND,
        system: stime as f64 / TICKS_PER_SECOND,
    })
}

/// The context switches (voluntary: it waited; involuntary: it was preempted) in one
/// `/proc/<pid>/task/<tid>/status`.
pub(crate) fn parse_context_switches(status: &str) -> Option<u64> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().parse::<u64>().ok())
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// CPU seconds used so far by the local RabbitMQ node (the `beam.smp` process), when it runs
/// on this machine.
pub(crate) fn broker_cpu_seconds() -> Option<f64> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_beam = std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim() == "beam.smp");
        if is_beam {
            return std::fs::read_to_string(path.join("stat"))
                .ok()
                .and_then(|stat| parse_cpu_seconds(&stat));
        }
    }
    None
}

/// Below this share of a core the broker counts as quiet.
const QUIET_CORES: f64 = 0.15;

/// Waits, at most `limit`, until the broker has used less than [`QUIET_CORES`] over a quarter
/// of a second; answers how long it waited. A scenario started while the broker still writes
/// the backlog just published, or deletes the previous scenario's queues, would time the
/// broker's catch-up along with the run (a worker run measured right after the floor's 100k
/// drain once saw the broker spend 76 µs per message instead of its usual 54).
pub(crate) async fn broker_settled(limit: Duration) -> Duration {
    const WINDOW: Duration = Duration::from_millis(250);
    let started = tokio::time::Instant::now();
    while started.elapsed() < limit {
        let Some(before) = broker_cpu_seconds() else {
            break;
        };
        tokio::time::sleep(WINDOW).await;
        let Some(after) = broker_cpu_seconds() else {
            break;
        };
        if (after - before) / WINDOW.as_secs_f64() < QUIET_CORES {
            break;
        }
    }
    started.elapsed()
}

/// Busy and total CPU seconds of the whole machine (every core), from the text of
/// `/proc/stat`. Busy is everything but `idle` and `iowait`; `guest` time is already counted
/// in `user`, so it is left out of the total.
pub(crate) fn parse_machine_cpu(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal
    let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks[..] else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some(MachineCpu {
        busy: busy as f64 / TICKS_PER_SECOND,
        total: (busy + idle + iowait) as f64 / TICKS_PER_SECOND,
    })
}

/// CPU seconds of the whole machine so far, summed over its cores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MachineCpu {
    /// Seconds some process or the kernel ran.
    pub(crate) busy: f64,
    /// Busy plus idle seconds.
    pub(crate) total: f64,
}

impl MachineCpu {
    /// The share of the machine's CPU time that was busy since `before` (`None` when no time
    /// passed between the readings).
    pub(crate) fn busy_share_since(&self, before: &Self) -> Option<f64> {
        let total = self.total - before.total;
        (total > 0.0).then(|| (self.busy - before.busy) / total)
    }
}

/// The machine's CPU seconds so far (`None` where `/proc/stat` cannot be read).
pub(crate) fn machine_cpu() -> Option<MachineCpu> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| parse_machine_cpu(&stat))
}

/// CPU seconds used so far by this process (the bench, with the sandbox in it).
pub(crate) fn own_cpu_seconds() -> Option<f64> {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| parse_cpu_seconds(&stat))
}

/// KiB as MiB.
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Parses `VmRSS` and `VmHWM` out of `/proc/<pid>/status`.
pub(crate) fn parse_status(status: &str) -> Option<Rss> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Rss {
        current_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// A worker binary running as a child process.
#[derive(Debug)]
pub(crate) struct WorkerProcess {
    name: String,
    child: Child,
    pid: u32,
}

impl WorkerProcess {
    /// Starts `binary` with `env` added to the inherited environment; its output goes to
    /// `log`.
    pub(crate) fn start(name: &str, binary: &Path, env: &BTreeMap<String, String>, log: &Path) -> Result<Self> {
        if !binary.exists() {
            bail!(
                "{} is missing: build the release binaries first (`cargo build --release --bins`, which `make bench` does)",
                binary.display()
            );
        }
        let output = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let errors = output.try_clone()?;
        let child = Command::new(binary)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the worker exited at once")?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
        })
    }

    /// Its memory now.
    pub(crate) fn rss(&self) -> Result<Rss> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("{} is not running", self.name))?;
        parse_status(&status).with_context(|| format!("no VmRSS/VmHWM in {path}"))
    }

    /// CPU time it has used so far.
    pub(crate) fn cpu_times(&self) -> Result<CpuTimes> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("{} is not running", self.name))?;
        parse_cpu_times(&stat).with_context(|| format!("no utime/stime in {path}"))
    }

    /// Context switches of its live threads so far: a thread goes to sleep and is woken
    /// for each, so this counts the cross-thread hand-offs a design costs.
    pub(crate) fn context_switches(&self) -> Result<u64> {
        let dir = format!("/proc/{}/task", self.pid);
        let tasks = std::fs::read_dir(&dir).with_context(|| format!("{} is not running", self.name))?;
        Ok(tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
            .filter_map(|status| parse_context_switches(&status))
            .sum())
    }

    /// Fails if the process has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited early ({status}); see its log in target/bench/logs/",
                self.name
            ),
        }
    }

    /// SIGTERM, then waits up to `deadline` for a graceful exit before killing it.
    pub(crate) async fn stop(mut self, deadline: Duration) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            // tokio can only SIGKILL; a graceful stop needs SIGTERM, sent to this child's pid only.
            let sent = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .status()
                .await
                .context("cannot run `kill`")?;
            if !sent.success() {
                bail!("`kill -TERM {}` failed", self.pid);
            }
            match tokio::time::timeout(deadline, self.child.wait()).await {
                Ok(status) => {
                    let status = status?;
                    if !status.success() {
                        bail!("{} exited with {status} after SIGTERM", self.name);
                    }
                }
                Err(_) => {
                    self.child.kill().await?;
                    bail!("{} did not stop within {deadline:?} of SIGTERM; killed", self.name);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_parsed_in_kib() {
        let status = "Name:\tcontact-sync\nVmHWM:\t   14336 kB\nVmRSS:\t   12288 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(status),
            Some(Rss {
                current_kib: 12288,
                peak_kib: 14336
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
        assert!((mib(12288) - 12.0).abs() < f64::EPSILON);
    }

    #[test]
    fn cpu_time_is_user_plus_system() {
        let stat = "4242 (contact sync) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 50 0 0 20 0 6 0 1 0 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    #[test]
    fn machine_cpu_counts_all_but_idle_and_iowait_as_busy() {
        let stat = "cpu  300 10 90 500 50 20 30 0 7 0\ncpu0 150 5 45 250 25 10 15 0 0 0\nintr 1 2\n";
        assert_eq!(parse_machine_cpu(stat), Some(MachineCpu { busy: 4.5, total: 10.0 }));
        let later = MachineCpu { busy: 6.0, total: 12.0 };
        let before = parse_machine_cpu(stat).unwrap();
        assert_eq!(later.busy_share_since(&before), Some(0.75));
        assert_eq!(before.busy_share_since(&before), None);
        assert_eq!(parse_machine_cpu("cpu0 1 2 3\n"), None);
        assert_eq!(parse_machine_cpu("cpu  1 2 x 4 5 6 7 8\n"), None);
    }

    #[test]
    fn cpu_time_splits_into_user_and_system() {
        let stat = "4242 (contact sync) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 50 0 0 20 0 6 0 1 0 0";
        assert_eq!(parse_cpu_times(stat), Some(CpuTimes { user: 2.5, system: 0.5 }));
    }

    #[test]
    fn context_switches_add_both_kinds() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(parse_context_switches(status), Some(127));
        assert_eq!(parse_context_switches("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_memory_is_readable() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss = parse_status(&status);
        assert!(rss.is_some_and(|r| r.current_kib > 0 && r.peak_kib >= r.current_kib));
    }
}
