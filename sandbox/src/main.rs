//! `switchyard-sandbox`: runs the provider emulator until SIGTERM or SIGINT.
//!
//! Configuration comes from `SANDBOX_*` variables (see `SandboxConfig::from_env`) plus
//! `SANDBOX_ADDR` (default `127.0.0.1:8080`), and logging from `LOG_FORMAT` / `RUST_LOG`
//! (see `telemetry`). An invalid setting exits with code 64.

use std::{net::SocketAddr, process::ExitCode};

use prometheus::Registry;
use settings::{EXIT_USAGE, Env};
use switchyard_sandbox::{Sandbox, SandboxConfig, serve};
use telemetry::{Health, LogConfig};
use tokio::net::TcpListener;

/// `EX_OSERR`: the address could not be bound.
const EXIT_BIND: u8 = 71;
const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// jemalloc instead of glibc malloc: tasks and lapin's I/O threads free each other's
/// allocations, which in glibc contends on arena locks (README "Benchmark").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let log_config = match LogConfig::from_strings(&Env) {
        Ok(config) => config,
        Err(why) => return usage_error(&why.to_string()),
    };
    telemetry::init_logging(&log_config);
    let config = match SandboxConfig::from_env() {
        Ok(config) => config,
        Err(why) => return usage_error(&why),
    };
    let addr_text = std::env::var("SANDBOX_ADDR").unwrap_or_default();
    let addr_text = if addr_text.trim().is_empty() {
        DEFAULT_ADDR.to_owned()
    } else {
        addr_text
    };
    let addr: SocketAddr = match addr_text.parse() {
        Ok(addr) => addr,
        Err(why) => return usage_error(&format!("SANDBOX_ADDR={addr_text:?} is not valid: {why}")),
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(why) => {
            eprintln!("switchyard-sandbox: cannot listen on {addr}: {why}");
            return ExitCode::from(EXIT_BIND);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    eprintln!("switchyard-sandbox listening on http://{local}");
    tracing::info!(%local, "Sandbox listening.");
    let sandbox = Sandbox::new(config);
    let registry = Registry::new();
    let health = Health::new();
    let metrics_addr = match telemetry::metrics_addr(&Env, "127.0.0.1:9470") {
        Ok(addr) => addr,
        Err(why) => return usage_error(&why.to_string()),
    };
    if let Err(why) = sandbox.register_metrics(&registry) {
        eprintln!("switchyard-sandbox: cannot register metrics: {why}");
        return ExitCode::FAILURE;
    }
    match telemetry::serve(metrics_addr, registry, health.clone()).await {
        Ok(bound) => tracing::info!(%bound, "Serving /metrics, /healthz and /readyz."),
        Err(why) => {
            eprintln!("switchyard-sandbox: cannot listen on METRICS_ADDR {metrics_addr}: {why}");
            return ExitCode::from(EXIT_BIND);
        }
    }
    health.set_ready(true);
    match serve(listener, sandbox, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("Sandbox stopped.");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("switchyard-sandbox: server failed: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Reports an invalid setting (the message names the variable) and exits with `EX_USAGE`.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("switchyard-sandbox: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(why) = tokio::signal::ctrl_c().await {
            eprintln!("switchyard-sandbox: cannot listen for Ctrl-C: {why}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(why) => {
                eprintln!("switchyard-sandbox: cannot listen for SIGTERM: {why}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
