//! The bench's settings, read once from a [`Strings`] source and validated; an error names the
//! variable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_QUICK` | `0` | `1`: the one-minute version (smaller backlogs, shorter runs) |
//! | `BENCH_ONLY` | all | comma-separated scenarios: `floor,worker,concurrency,latency,memory,quota` |
//! | `BENCH_OUT` | `target/bench` | where `summary.json`, the plot and the worker logs go |
//! | `BENCH_BIN_DIR` | the bench binary's directory | where the worker binaries are |
//! | `AMQP_URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` | the broker |
//! | `REDIS_URL` | `redis://127.0.0.1:6379/` | the store the quota replicas share |

use std::path::PathBuf;

use settings::{ConfigError, ExposeSecret, MqConfig, Strings};

/// A scenario that can be selected with `BENCH_ONLY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// The lapin relay and raw publish floor.
    Floor,
    /// contact-sync end-to-end throughput (one and two destinations, bulk).
    Worker,
    /// End-to-end throughput of loyalty-events, voucher-events and recommendations.
    Workers,
    /// Concurrency efficiency with 50 ms provider latency.
    Concurrency,
    /// Added latency at half the max rate (and idle memory).
    Latency,
    /// Memory while draining the large backlog.
    Memory,
    /// Quota precision with replicas sharing Redis.
    Quota,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub(crate) const ALL: [Scenario; 7] = [
        Scenario::Floor,
        Scenario::Worker,
        Scenario::Workers,
        Scenario::Concurrency,
        Scenario::Latency,
        Scenario::Memory,
        Scenario::Quota,
    ];

    /// The name used in `BENCH_ONLY`.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Scenario::Floor => "floor",
            Scenario::Worker => "worker",
            Scenario::Workers => "workers",
            Scenario::Concurrency => "concurrency",
            Scenario::Latency => "latency",
            Scenario::Memory => "memory",
            Scenario::Quota => "quota",
        }
    }
}

/// Backlog sizes and durations of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Messages for the raw publish and relay floor.
    pub(crate) floor: usize,
    /// Backlog of the single-destination worker throughput run.
    pub(crate) worker: usize,
    /// Backlog of the two-destination worker run.
    pub(crate) worker_both: usize,
    /// Backlog of the concurrency run.
    pub(crate) concurrency: usize,
    /// Seconds of paced load in the latency run.
    pub(crate) latency_secs: u64,
    /// Backlog of the memory run.
    pub(crate) memory: usize,
    /// Backlog of the quota run (the sandbox limit equals the configured one).
    pub(crate) quota: usize,
    /// Backlog of the quota run whose sandbox limit is below the configured one.
    pub(crate) quota_low: usize,
}

impl Sizes {
    /// The full run: a few minutes, most of it the quota scenario.
    pub(crate) const FULL: Self = Self {
        floor: 100_000,
        worker: 50_000,
        worker_both: 20_000,
        concurrency: 12_000,
        latency_secs: 10,
        memory: 100_000,
        quota: 2_000,
        quota_low: 400,
    };

    /// `BENCH_QUICK=1`: about a minute. The quota runs are paced by the quota itself (10 calls
    /// a second, 50 per 6 s when the vendor is lower), so their backlogs decide most of it.
    pub(crate) const QUICK: Self = Self {
        floor: 30_000,
        worker: 10_000,
        worker_both: 5_000,
        concurrency: 3_000,
        latency_secs: 4,
        memory: 20_000,
        quota: 200,
        quota_low: 60,
    };
}

/// Everything the bench needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Whether this is the quick run.
    pub(crate) quick: bool,
    /// Sizes of this run.
    pub(crate) sizes: Sizes,
    /// Scenarios to run.
    pub(crate) only: Vec<Scenario>,
    /// Output directory.
    pub(crate) out: PathBuf,
    /// Where the worker binaries are.
    pub(crate) bin_dir: PathBuf,
    /// The workspace root (for `config/field-mapping.toml`).
    pub(crate) workspace: PathBuf,
    /// Broker (the first `AMQP_URL`).
    pub(crate) mq: MqConfig,
    /// Redis for the quota replicas.
    pub(crate) redis_url: String,
    /// `BENCH_LATENCY_RATE`: the latency run's publish rate instead of half the sustained
    /// maximum.
    pub(crate) latency_rate: Option<f64>,
}

impl Config {
    /// Reads and validates the settings; `exe_dir` is the default of `BENCH_BIN_DIR`.
    pub(crate) fn from_strings(strings: &dyn Strings, exe_dir: PathBuf) -> Result<Self, ConfigError> {
        let quick = match strings.get("BENCH_QUICK")?.as_deref().map(str::trim) {
            None | Some("0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(_) => return Err(ConfigError::invalid("BENCH_QUICK", "expected `1` or `0`")),
        };
        let only = match strings.get("BENCH_ONLY")? {
            None => Scenario::ALL.to_vec(),
            Some(raw) => {
                let mut only = Vec::new();
                for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let scenario = Scenario::ALL.into_iter().find(|s| s.as_str() == name).ok_or_else(|| {
                        let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.as_str()).collect();
                        ConfigError::invalid(
                            "BENCH_ONLY",
                            format!(
                                "unknown scenario `{name}`; use a comma-separated subset of `{}`",
                                names.join(",")
                            ),
                        )
                    })?;
                    only.push(scenario);
                }
                if only.is_empty() {
                    return Err(ConfigError::invalid("BENCH_ONLY", "name at least one scenario"));
                }
                only
            }
        };
        let redis_url = strings
            .get("REDIS_URL")?
            .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
        if !redis_url.starts_with("redis://") && !redis_url.starts_with("rediss://") {
            return Err(ConfigError::invalid(
                "REDIS_URL",
                "expected a URL such as `redis://127.0.0.1:6379/`",
            ));
        }
        let latency_rate = settings::parse(strings, "BENCH_LATENCY_RATE", |raw| match raw.trim().parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate >= 1.0 => Ok(rate),
            _ => Err("expected messages per second, at least 1 (e.g. `2000`)".to_owned()),
        })?;
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        Ok(Self {
            quick,
            sizes: if quick { Sizes::QUICK } else { Sizes::FULL },
            only,
            out: settings::path_or(strings, "BENCH_OUT", "target/bench")?,
            bin_dir: strings.get("BENCH_BIN_DIR")?.map_or(exe_dir, PathBuf::from),
            workspace,
            mq: MqConfig::from_strings(strings)?,
            redis_url,
            latency_rate,
        })
    }

    /// Whether `scenario` runs.
    pub(crate) fn runs(&self, scenario: Scenario) -> bool {
        self.only.contains(&scenario)
    }

    /// The broker URL the bench's own connections use.
    pub(crate) fn amqp_url(&self) -> &str {
        self.mq
            .urls
            .first()
            .map_or(settings::DEFAULT_AMQP_URL, |url| url.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let strings: HashMap<&str, &str> = pairs.iter().copied().collect();
        Config::from_strings(&strings, PathBuf::from("/bin-dir"))
    }

    #[test]
    fn defaults_run_everything_at_full_size() {
        let config = config(&[]);
        assert!(config.as_ref().is_ok_and(|c| !c.quick
            && c.sizes == Sizes::FULL
            && c.only.len() == Scenario::ALL.len()
            && c.bin_dir == Path::new("/bin-dir")
            && c.out == Path::new("target/bench")));
    }

    #[test]
    fn quick_shrinks_the_backlogs() {
        assert!(config(&[("BENCH_QUICK", "1")]).is_ok_and(|c| c.quick && c.sizes == Sizes::QUICK));
    }

    #[test]
    fn invalid_values_name_their_variable() {
        let variable = |pairs: &[(&str, &str)]| config(pairs).err().map(|e| e.variable().to_owned());
        assert_eq!(variable(&[("BENCH_QUICK", "maybe")]), Some("BENCH_QUICK".into()));
        assert_eq!(variable(&[("BENCH_ONLY", "floor,warp")]), Some("BENCH_ONLY".into()));
        assert_eq!(variable(&[("REDIS_URL", "http://x")]), Some("REDIS_URL".into()));
        assert_eq!(variable(&[("AMQP_URL", "http://x")]), Some("AMQP_URL".into()));
        assert_eq!(
            variable(&[("BENCH_LATENCY_RATE", "0")]),
            Some("BENCH_LATENCY_RATE".into())
        );
        assert_eq!(
            variable(&[("BENCH_LATENCY_RATE", "fast")]),
            Some("BENCH_LATENCY_RATE".into())
        );
        assert!(config(&[("BENCH_LATENCY_RATE", "2500")]).is_ok_and(|c| c.latency_rate == Some(2500.0)));
    }

    #[test]
    fn only_selects_scenarios() {
        assert!(
            config(&[("BENCH_ONLY", "quota, floor")])
                .is_ok_and(|c| c.only == [Scenario::Quota, Scenario::Floor] && c.runs(Scenario::Floor))
        );
    }
}
