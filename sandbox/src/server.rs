//! The HTTP server: the router ([`app`]), the gate every provider call passes through (body
//! limit, call log, faults, auth, rate limit), connection handling that can reset a connection
//! on demand, and [`serve`] / [`spawn`].

use std::{
    future::Future,
    io,
    net::{Ipv4Addr, SocketAddr},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, DefaultBodyLimit, Request, State, connect_info::Connected},
    http::{StatusCode, header::CONTENT_LENGTH, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    serve::{IncomingStream, Listener},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::{
    Provider, Sandbox, SandboxConfig,
    calls::CallStart,
    faults::FaultAction,
    inspect,
    provider::Refusal,
    senders, spotler,
    support::{now_utc, rfc3339_millis},
};

/// Request bodies larger than this (1 MiB) are answered 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The whole router: every provider under its prefix plus `/_sandbox`.
///
/// Served with [`serve`] or [`spawn`], the `reset_connection` fault closes connections; served
/// any other way (e.g. `tower::ServiceExt::oneshot`) it answers those calls with a 500
/// instead.
pub fn app(state: Sandbox) -> Router {
    let mut router = Router::new();
    for provider in Provider::ALL {
        router = router.nest(provider.path_prefix(), provider.router());
    }
    router
        .merge(inspect::router())
        .merge(senders::router())
        .merge(spotler::changes::inspect_router())
        .fallback(|| async { inspect::error(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes the open requests.
pub async fn serve(
    listener: TcpListener,
    state: Sandbox,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let service = app(state).into_make_service_with_connect_info::<ConnectionHandle>();
    axum::serve(ResettableListener(listener), service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts a sandbox on `127.0.0.1` with a free port, served by a background task.
pub async fn spawn(config: SandboxConfig) -> io::Result<RunningSandbox> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let state = Sandbox::new(config);
    let task = tokio::spawn({
        let state = state.clone();
        async move {
            if let Err(error) = serve(listener, state, std::future::pending()).await {
                tracing::error!(%error, "Sandbox server stopped.");
            }
        }
    });
    Ok(RunningSandbox {
        addr,
        state,
        _server: AbortOnDrop(task),
    })
}

/// A sandbox started by [`spawn`]. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningSandbox {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state, for in-process inspection and control.
    pub state: Sandbox,
    _server: AbortOnDrop,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Spotler API base URL: `http://127.0.0.1:PORT/spotler/integrationservice-1.1.0`.
    pub fn spotler_base_url(&self) -> String {
        format!("{}{}", self.base_url(), Provider::Spotler.path_prefix())
    }

    /// The Ecomail API base URL: `http://127.0.0.1:PORT/ecomail`.
    pub fn ecomail_base_url(&self) -> String {
        format!("{}{}", self.base_url(), Provider::Ecomail.path_prefix())
    }

    /// The Voucherify API base URL: `http://127.0.0.1:PORT/voucherify` (clients append `/v1/...`).
    pub fn voucherify_base_url(&self) -> String {
        format!("{}{}", self.base_url(), Provider::Voucherify.path_prefix())
    }

    /// The Voucherify Bloomreach integration base URL:
    /// `http://127.0.0.1:PORT/voucherify-integration` (clients append `/bloomreach-engagement/...`).
    pub fn voucherify_integration_base_url(&self) -> String {
        format!("{}{}", self.base_url(), Provider::VoucherifyIntegration.path_prefix())
    }

    /// The Bloomreach Tracking API base URL: `http://127.0.0.1:PORT/bloomreach` (clients append
    /// `/track/v2/projects/{projectToken}/...`).
    pub fn bloomreach_base_url(&self) -> String {
        format!("{}{}", self.base_url(), Provider::Bloomreach.path_prefix())
    }

    /// The SALESmanago base URL: `http://127.0.0.1:PORT/salesmanago` (clients append `/api/...`).
    pub fn salesmanago_base_url(&self) -> String {
        format!("{}{}", self.base_url(), Provider::Salesmanago.path_prefix())
    }

    /// The Froomle base URL: `http://127.0.0.1:PORT/froomle` (clients append `/oauth/token` and
    /// `/api/{environment}/...`).
    pub fn froomle_base_url(&self) -> String {
        format!("{}{}", self.base_url(), Provider::Froomle.path_prefix())
    }

    /// The variables that point a worker at this sandbox's `provider` with the default
    /// credentials ([`SandboxConfig::for_tests`]): its base URL and secrets, named as the
    /// workers read them (Voucherify includes its integration endpoints).
    pub fn worker_env(&self, provider: Provider) -> Vec<(&'static str, String)> {
        use crate::config as c;
        let env = |base: (&'static str, String), secrets: &[(&'static str, &str)]| {
            let mut env = vec![base];
            env.extend(secrets.iter().map(|(k, v)| (*k, (*v).to_owned())));
            env
        };
        match provider {
            Provider::Spotler => env(
                ("SPOTLER_BASE_URL", self.spotler_base_url()),
                &[
                    ("SPOTLER_CONSUMER_KEY", c::DEFAULT_SPOTLER_CONSUMER_KEY),
                    ("SPOTLER_CONSUMER_SECRET", c::DEFAULT_SPOTLER_CONSUMER_SECRET),
                ],
            ),
            Provider::Ecomail => env(
                ("ECOMAIL_BASE_URL", self.ecomail_base_url()),
                &[("ECOMAIL_API_KEY", c::DEFAULT_ECOMAIL_API_KEY)],
            ),
            Provider::Voucherify | Provider::VoucherifyIntegration => {
                let mut vars = env(
                    ("VOUCHERIFY_BASE_URL", self.voucherify_base_url()),
                    &[
                        ("VOUCHERIFY_APP_ID", c::DEFAULT_VOUCHERIFY_APP_ID),
                        ("VOUCHERIFY_APP_TOKEN", c::DEFAULT_VOUCHERIFY_APP_TOKEN),
                    ],
                );
                vars.extend(env(
                    (
                        "VOUCHERIFY_INTEGRATION_BASE_URL",
                        self.voucherify_integration_base_url(),
                    ),
                    &[
                        (
                            "VOUCHERIFY_INTEGRATION_APP_ID",
                            c::DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID,
                        ),
                        (
                            "VOUCHERIFY_INTEGRATION_SECRET_KEY",
                            c::DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY,
                        ),
                    ],
                ));
                vars
            }
            Provider::Bloomreach => env(
                ("BLOOMREACH_BASE_URL", self.bloomreach_base_url()),
                &[
                    ("BLOOMREACH_PROJECT_TOKEN", c::DEFAULT_BLOOMREACH_PROJECT_TOKEN),
                    ("BLOOMREACH_API_KEY_ID", c::DEFAULT_BLOOMREACH_KEY_ID),
                    ("BLOOMREACH_API_SECRET", c::DEFAULT_BLOOMREACH_SECRET),
                ],
            ),
            Provider::Salesmanago => env(
                ("SALESMANAGO_BASE_URL", self.salesmanago_base_url()),
                &[
                    ("SALESMANAGO_CLIENT_ID", c::DEFAULT_SALESMANAGO_CLIENT_ID),
                    ("SALESMANAGO_API_SECRET", c::DEFAULT_SALESMANAGO_API_SECRET),
                    ("SALESMANAGO_OWNER", c::DEFAULT_SALESMANAGO_OWNER),
                ],
            ),
            Provider::Froomle => env(
                ("FROOMLE_BASE_URL", self.froomle_base_url()),
                &[
                    ("FROOMLE_CLIENT_ID", c::DEFAULT_FROOMLE_CLIENT_ID),
                    ("FROOMLE_CLIENT_SECRET", c::DEFAULT_FROOMLE_CLIENT_SECRET),
                ],
            ),
        }
    }

    /// Stops the server now (the same as dropping it).
    pub fn stop(self) {
        drop(self);
    }
}

/// Aborts the server task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every provider call passes through here; other paths go straight to their handlers.
async fn gate(State(sandbox): State<Sandbox>, request: Request, next: Next) -> Response {
    let Some(provider) = Provider::from_path(request.uri().path()) else {
        return next.run(request).await;
    };
    let received_at = rfc3339_millis(now_utc());
    let (parts, body) = request.into_parts();
    let body = read_body(&parts, body).await;
    let start = CallStart {
        provider,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        received_at,
        body: body.as_ref().ok().cloned(),
    };
    let pending = sandbox.begin_call(start);
    let mut response = match body {
        Err(()) => provider.refusal(&sandbox, Refusal::PayloadTooLarge),
        Ok(bytes) => match handle(&sandbox, provider, parts, bytes, next).await {
            Handled::Answered(response) => response,
            Handled::ConnectionReset => {
                sandbox.finish_call(pending, 0);
                tracing::debug!(%provider, "Reset the connection (injected fault).");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        },
    };
    provider.decorate(&sandbox, &mut response);
    let status = response.status();
    sandbox.finish_call(pending, status.as_u16());
    tracing::debug!(%provider, status = status.as_u16(), "Answered a provider call.");
    response
}

/// The outcome of a provider call after the body was read.
#[derive(Debug)]
enum Handled {
    Answered(Response),
    ConnectionReset,
}

/// Faults, then auth, then the rate limit, then the provider emulation.
async fn handle(sandbox: &Sandbox, provider: Provider, parts: Parts, body: Bytes, next: Next) -> Handled {
    let plan = sandbox.take_fault(provider);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    match plan.action {
        FaultAction::ResetConnection => match parts.extensions.get::<ConnectInfo<ConnectionHandle>>() {
            Some(ConnectInfo(handle)) => {
                handle.reset();
                Handled::ConnectionReset
            }
            None => Handled::Answered(provider.refusal(sandbox, Refusal::InjectedError)),
        },
        FaultAction::Respond(refusal) => Handled::Answered(provider.refusal(sandbox, refusal)),
        FaultAction::Proceed => {
            if let Some(response) = provider.auth_failure(sandbox, &parts, &body) {
                return Handled::Answered(response);
            }
            if let Err(retry_after_secs) = sandbox.try_acquire(provider) {
                return Handled::Answered(provider.refusal(sandbox, Refusal::RateLimited { retry_after_secs }));
            }
            Handled::Answered(next.run(Request::from_parts(parts, Body::from(body))).await)
        }
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
async fn read_body(parts: &Parts, body: Body) -> Result<Bytes, ()> {
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| ())
}

/// A `TcpListener` whose connections can be reset from a request handler.
#[derive(Debug)]
struct ResettableListener(TcpListener);

impl Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        // Like the vendors' front ends: an answer is never held back waiting for an ACK of the
        // previous segment (Nagle). A failure only costs that, so it is not fatal.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "Cannot set TCP_NODELAY on an accepted connection.");
        }
        let stream = ResettableStream {
            inner: stream,
            reset: Arc::new(AtomicBool::new(false)),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Lets a handler reset the connection its request came on; stored as `ConnectInfo`.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle(Arc<AtomicBool>);

impl ConnectionHandle {
    /// From now on, all I/O on the connection fails and the socket is closed with a reset.
    fn reset(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, ResettableListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        Self(stream.io().reset.clone())
    }
}

/// A `TcpStream` that fails every operation once its connection has been reset.
#[derive(Debug)]
struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    /// If reset: arranges for an RST on close and returns the error hyper will see.
    fn check(&self) -> Option<io::Error> {
        if !self.reset.load(Ordering::SeqCst) {
            return None;
        }
        if let Err(error) = self.inner.set_zero_linger() {
            tracing::debug!(%error, "Could not set SO_LINGER=0 on a reset connection.");
        }
        Some(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "connection reset by sandbox fault injection",
        ))
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.check() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(error) = self.check() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.check() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(error) = self.check() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.check() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
