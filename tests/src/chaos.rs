//! The chaos harness behind the fault matrix (`../shared/RELIABILITY.md` section 6): worker
//! binaries as child processes that can be killed at observed points, fault proxies, private
//! RabbitMQ nodes, and the lost / duplicate / unexpected oracle every row reports.
//!
//! # Layout
//! - [`process`]: [`WorkerProcess`], a worker binary with captured logs, signals, `/metrics`,
//!   RSS and socket counts.
//! - [`proxy`]: [`FaultProxy`], an in-process TCP proxy that observes, holds or drops traffic
//!   (the "stub received the call" observation point, lost responses, held acks), and
//!   [`Socat`], the `socat` proxy used for network cuts and black holes.
//! - [`node`]: [`PrivateNode`] and [`PrivateCluster`], RabbitMQ nodes of our own for the rows
//!   that change broker state, so the shared broker on 127.0.0.1:5672 is never touched.
//! - [`oracle`]: [`Oracle`] and [`Report`]: lost, duplicate effects, unexpected (section 3.4).
//! - [`rig`]: [`Rig`], one row's namespace, sandbox, admin connections and oracle.
//! - [`leaks`]: the log checks of row 25 (secrets, the AMQP password, e-mail addresses) and a
//!   throwaway broker user with a recognizable password.
//!
//! Everything a row changes is undone by a `Drop` guard (processes killed, nodes stopped,
//! users deleted), so a failing assertion cleans up too.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::ops::Range;
use std::path::PathBuf;

pub mod leaks;
pub mod node;
pub mod oracle;
pub mod process;
pub mod proxy;
pub mod rig;

pub use leaks::{BrokerUser, SANDBOX_SECRETS, assert_clean, email_like, leaked_secrets, raw_emails};
pub use node::{PrivateCluster, PrivateNode};
pub use oracle::{Oracle, Published, Report};
pub use process::{LogLine, WorkerProcess};
pub use proxy::{FaultProxy, Socat};
pub use rig::Rig;

/// The shared broker's URL (what `make test` uses).
pub const SHARED_BROKER: &str = settings::DEFAULT_AMQP_URL;

/// An HTTP client for the harness (metrics, readiness, direct sandbox calls), with the
/// process-wide rustls provider installed first as reqwest requires.
pub fn http_client() -> reqwest::Client {
    api_client::client::init_crypto();
    reqwest::Client::new()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A free port in `range` (for RabbitMQ's distribution port, whose CLI range sits 10000 above).
pub fn free_port_in(range: Range<u16>) -> u16 {
    let span = u32::from(range.end - range.start).max(1);
    let start = u32::from(uuid::Uuid::new_v4().as_u128() as u16) % span;
    for offset in 0..span {
        let port = range.start + u16::try_from((start + offset) % span).unwrap_or(0);
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in {range:?}");
}

/// `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Where private nodes keep their files: `$SWITCHYARD_CHAOS_DIR` (set by `scripts/chaos.sh`,
/// which removes it at the end) or a directory under the system temp dir.
pub fn work_dir() -> PathBuf {
    std::env::var_os("SWITCHYARD_CHAOS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("switchyard-chaos"))
}

/// A deterministic pseudo-random sequence (a 64-bit LCG) for kill points: the same seed gives
/// the same schedule, so a failing run can be repeated.
#[derive(Debug, Clone)]
pub struct Schedule(u64);

impl Schedule {
    /// A sequence starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))
    }

    /// The next value in `0..bound` (0 when `bound` is 0).
    pub fn next_below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        if bound == 0 { 0 } else { (self.0 >> 33) % bound }
    }
}

/// Prints the row banner and the oracle line, and asserts lost = duplicate effects =
/// unexpected = 0 (RELIABILITY.md 3.4). Returns the report for row-specific checks.
pub fn check_row(row: &str, report: Report) -> Report {
    report.print(row);
    assert_eq!(report.lost, 0, "row {row}: lost messages: {report:?}");
    assert_eq!(
        report.duplicate_effects, 0,
        "row {row}: duplicate side effects: {report:?}"
    );
    assert_eq!(
        report.unexpected, 0,
        "row {row}: unexpected results or effects: {report:?}"
    );
    report
}
