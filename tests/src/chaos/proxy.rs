//! Proxies that put faults between a worker and what it talks to.
//!
//! [`FaultProxy`] is an in-process TCP proxy with observation points and precise faults: it
//! counts the bytes a client sent (a request has reached the stub), watches for a pattern
//! (the call of one message), holds a connection's client-to-server bytes (an ack that never
//! reaches the broker, a request that never reaches the API) and drops responses after the
//! upstream has acted on the request (the ambiguous failure: effect done, answer lost).
//!
//! [`Socat`] runs `socat` in a process group of its own, so a cut (`kill`) or a black hole
//! (`kill -STOP`) reaches every connection it forwards.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::local;

/// One proxied connection's controls.
#[derive(Debug)]
struct Conn {
    /// While `true`, bytes from the client are read but not forwarded.
    hold: watch::Sender<bool>,
    /// Once `true`, both sides are closed and whatever was held is discarded.
    sever: watch::Sender<bool>,
}

/// A pattern to look for in client-to-server bytes.
#[derive(Debug)]
struct Watch {
    pattern: Vec<u8>,
    seen: Arc<AtomicU64>,
    /// Hold the connection (stop forwarding) once the pattern is seen.
    hold: bool,
}

#[derive(Debug)]
struct State {
    upstream: SocketAddr,
    bytes_up: AtomicU64,
    connections: Mutex<Vec<Arc<Conn>>>,
    drop_responses: AtomicU32,
    dropped: AtomicU32,
    hold_new: AtomicBool,
    watches: Mutex<Vec<Watch>>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An in-process TCP proxy in front of `upstream`. Dropping it closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(local(0))
            .await
            .unwrap_or_else(|e| panic!("proxy listen: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("proxy addr: {e}"));
        let state = Arc::new(State {
            upstream,
            bytes_up: AtomicU64::new(0),
            connections: Mutex::new(Vec::new()),
            drop_responses: AtomicU32::new(0),
            dropped: AtomicU32::new(0),
            hold_new: AtomicBool::new(false),
            watches: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept(listener, Arc::clone(&state)));
        Self { addr, state, task }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + `path`, for pointing an HTTP client through the proxy.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Bytes clients have sent so far (all connections).
    pub fn bytes_up(&self) -> u64 {
        self.state.bytes_up.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        locked(&self.state.connections).len()
    }

    /// Holds (or releases) the client-to-server direction of the `index`-th connection
    /// (in accept order): what the client sends is read but not forwarded until released.
    pub fn hold_upstream(&self, index: usize, hold: bool) {
        let connections = locked(&self.state.connections);
        match connections.get(index) {
            Some(conn) => {
                let _previous = conn.hold.send_replace(hold);
            }
            None => panic!("no connection #{index} (only {})", connections.len()),
        }
    }

    /// Releases every held connection and stops holding on patterns.
    pub fn release_all(&self) {
        locked(&self.state.watches).iter_mut().for_each(|w| w.hold = false);
        for conn in locked(&self.state.connections).iter() {
            let _previous = conn.hold.send_replace(false);
        }
    }

    /// Closes every connection accepted so far, discarding what was held: the upstream sees
    /// the client go away without the held bytes (e.g. the broker never gets a held ack).
    pub fn sever_all(&self) {
        for conn in locked(&self.state.connections).iter() {
            let _previous = conn.sever.send_replace(true);
        }
    }

    /// The next `count` responses are swallowed: the upstream has handled the request, the
    /// client's connection is reset without an answer.
    pub fn drop_next_responses(&self, count: u32) {
        self.state.drop_responses.store(count, Ordering::SeqCst);
    }

    /// Responses swallowed so far.
    pub fn dropped_responses(&self) -> u32 {
        self.state.dropped.load(Ordering::SeqCst)
    }

    /// Counts client-to-server chunks containing `pattern`; with `hold`, a connection that
    /// sends it is held (nothing more reaches the upstream) until [`Self::release_all`].
    pub fn watch(&self, pattern: &str, hold: bool) -> Arc<AtomicU64> {
        let seen = Arc::new(AtomicU64::new(0));
        locked(&self.state.watches).push(Watch {
            pattern: pattern.as_bytes().to_vec(),
            seen: Arc::clone(&seen),
            hold,
        });
        seen
    }

    /// Waits up to `timeout` until clients have sent more than `mark` bytes.
    pub async fn wait_bytes_after(&self, mark: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.bytes_up() <= mark {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Whether new connections start held.
    pub fn hold_new_connections(&self, hold: bool) {
        self.state.hold_new.store(hold, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    // Dropping the set (when the proxy is dropped and this task aborted) aborts every pump.
    let mut pumps = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let (hold, _) = watch::channel(state.hold_new.load(Ordering::SeqCst));
                let (sever, _) = watch::channel(false);
                let conn = Arc::new(Conn { hold, sever });
                locked(&state.connections).push(Arc::clone(&conn));
                pumps.spawn(pump(client, Arc::clone(&state), conn));
            }
            Some(_) = pumps.join_next(), if !pumps.is_empty() => {}
        }
    }
}

/// Scans `chunk` against the watches; returns whether the connection must now be held.
fn observe(state: &State, chunk: &[u8]) -> bool {
    let mut hold = false;
    for watch in locked(&state.watches).iter() {
        if !watch.pattern.is_empty()
            && chunk
                .windows(watch.pattern.len())
                .any(|w| w == watch.pattern.as_slice())
        {
            watch.seen.fetch_add(1, Ordering::SeqCst);
            hold |= watch.hold;
        }
    }
    hold
}

async fn pump(client: TcpStream, state: Arc<State>, conn: Arc<Conn>) {
    let mut held = conn.hold.subscribe();
    let mut severed = conn.sever.subscribe();
    let Ok(upstream) = TcpStream::connect(state.upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            state.bytes_up.fetch_add(n as u64, Ordering::SeqCst);
            if observe(&state, &buf[..n]) {
                let _previous = conn.hold.send_replace(true);
            }
            if held.wait_for(|hold| !*hold).await.is_err() {
                return;
            }
            if upstream_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match upstream_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let swallow = state
                .drop_responses
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                .is_ok();
            if swallow {
                state.dropped.fetch_add(1, Ordering::SeqCst);
                // A reset, not a clean close: the client sees the answer lost mid-flight.
                // Without SO_LINGER=0 the close is a FIN; the answer is lost either way.
                let _linger = client_write.as_ref().set_zero_linger();
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
        _ = severed.wait_for(|sever| *sever) => {}
    }
}

/// `socat TCP-LISTEN:<listen>,fork,reuseaddr TCP:127.0.0.1:<target>` in its own process group.
#[derive(Debug)]
pub struct Socat {
    listen: u16,
    target: u16,
    child: Option<Child>,
}

impl Socat {
    /// Starts forwarding `127.0.0.1:listen` to `127.0.0.1:target` and waits until it listens.
    pub async fn start(listen: u16, target: u16) -> Self {
        let mut socat = Self {
            listen,
            target,
            child: None,
        };
        socat.launch().await;
        socat
    }

    async fn launch(&mut self) {
        let child = Command::new("socat")
            .args([
                format!("TCP-LISTEN:{},bind=127.0.0.1,fork,reuseaddr", self.listen),
                format!("TCP:127.0.0.1:{}", self.target),
            ])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("socat: {e} (is socat installed?)"));
        self.child = Some(child);
        for _ in 0..100 {
            if TcpStream::connect(local(self.listen)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("socat did not listen on {}", self.listen);
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.listen
    }

    fn group(&self) -> Option<String> {
        self.child.as_ref().and_then(Child::id).map(|pid| format!("-{pid}"))
    }

    async fn signal_group(&self, signal: &str) {
        if let Some(group) = self.group() {
            let sent = Command::new("kill")
                .args([&format!("-{signal}"), "--", &group])
                .status()
                .await;
            assert!(sent.is_ok_and(|s| s.success()), "kill -{signal} -- {group}");
        }
    }

    /// Kills socat and every forked child: all proxied connections drop (RST/FIN).
    pub async fn cut(&mut self) {
        self.signal_group("KILL").await;
        if let Some(mut child) = self.child.take() {
            let _status = child.wait().await;
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.launch().await;
    }

    /// Freezes socat (SIGSTOP): connections stay open but nothing moves (a black hole).
    pub async fn freeze(&self) {
        self.signal_group("STOP").await;
    }

    /// Resumes a frozen socat.
    pub async fn thaw(&self) {
        self.signal_group("CONT").await;
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        if let Some(group) = self.group() {
            // SIGKILL works on a stopped group too; only the group we started.
            let _killed = std::process::Command::new("kill")
                .args(["-KILL", "--", &group])
                .status();
        }
    }
}
