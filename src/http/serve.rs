//! The accept loop: HTTP/1.1 connections with a request-head deadline, a keep-alive idle
//! deadline, a whole-request deadline and a cap on open connections (axum::serve has none
//! of these, so a client that opens connections and sends nothing could exhaust the
//! process's file descriptors). With a TLS certificate ([`ServerTls`]) the listener speaks
//! HTTPS only: the handshake has the request-head deadline and holds a connection slot, and
//! clients that offer `h2` in ALPN get HTTP/2 with bounded streams and an idle deadline of
//! its own ([`Streams`]).

use super::error::status_message;
use super::routes::{management_router, router};
use super::tls::{ServerTls, ALPN_H2};
use crate::app::App;
use axum::extract::ConnectInfo;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::{Instant, Sleep};

/// How long open connections may take to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The pause after an accept error such as EMFILE, so the loop does not spin (as axum::serve).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Open connections the management listener takes at most: scrapers and probes, few and
/// local. Its own cap, so a flood on the public listener cannot keep them out.
const MANAGEMENT_MAX_CONNECTIONS: usize = 64;

/// Requests one HTTP/2 connection may run at once. An HTTP/1.1 connection runs one; the
/// API's clients (scripts, OData clients, a browser on the pages) need a few in parallel,
/// not the hundreds a CDN would allow, and every stream can hold a handler and a body.
/// Clients queue further requests themselves.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 32;
/// Largest decoded header block of an HTTP/2 request: room for a Kerberos `Negotiate`
/// token of a user in many groups (up to 64 KiB in base64) and cookies; HTTP/1.1 heads are
/// bounded by hyper's read buffer (about 400 KiB).
pub const H2_MAX_HEADER_LIST_BYTES: u32 = 128 * 1024;
/// Streams a client may open and reset before the server accepts them (the "rapid
/// reset" attack, CVE-2023-44487); past it the connection is closed.
pub const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server may have to reset because of the client's errors before it closes
/// the connection (CVE-2024-27316-style floods of malformed streams).
pub const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;
/// Flow-control windows: at most this much request body is buffered per stream and per
/// connection before the handler reads it (HTTP/1.1 buffers up to hyper's ~400 KiB).
const H2_STREAM_WINDOW: u32 = 128 * 1024;
const H2_CONNECTION_WINDOW: u32 = 512 * 1024;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The API and the web pages, with `server.max_connections`.
    Public,
    /// `/metrics`, `/healthz` and `/readyz` (`server.management_listen`).
    Management,
}

/// What every connection of a listener is served with.
struct Connections {
    router: Router,
    request_timeout: Duration,
    deadlines: Deadlines,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

/// Serves `which` routes on `listener` until `shutdown` completes, then lets open
/// connections finish (for a bounded time). With `tls`, every connection is HTTPS.
pub async fn serve(
    app: Arc<App>,
    which: Listener,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let server = &app.config.server;
    let deadlines = Deadlines {
        header_read: Duration::from_secs(server.header_read_timeout_seconds),
        keep_alive: Duration::from_secs(server.keep_alive_timeout_seconds),
    };
    let request_timeout = Duration::from_secs(server.request_timeout_seconds);
    let (router, max_connections) = match which {
        Listener::Public => (router(app.clone()), connection_cap(server.max_connections)),
        Listener::Management => (management_router(app.clone()), MANAGEMENT_MAX_CONNECTIONS),
    };
    tracing::info!(
        listener = ?which,
        max_connections,
        header_read_timeout_seconds = server.header_read_timeout_seconds,
        keep_alive_timeout_seconds = server.keep_alive_timeout_seconds,
        request_timeout_seconds = server.request_timeout_seconds,
        tls = tls.is_some(),
        "connection limits"
    );

    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_BYTES)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW);
    let connections = Arc::new(Connections {
        router,
        request_timeout,
        deadlines,
        // No hyper timer: `TimedStream` keeps both read deadlines, and hyper's own
        // header_read_timeout would arm and cancel one more timer on every request.
        http1: http1::Builder::new(),
        http2: h2,
    });
    let acceptor = tls.map(|t| t.acceptor());

    let slots = Arc::new(Semaphore::new(max_connections));
    // Shutdown asks every connection to finish (`drive`); each holds a receiver until it
    // has, so the sender sees when all are done.
    let (closing, _) = watch::channel(());
    let mut at_cap = false;
    tokio::pin!(shutdown);
    loop {
        // The permit is taken before accept(): at the cap, new connections wait in the
        // kernel's backlog instead of being accepted and holding a descriptor.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = acquire(&slots, &mut at_cap, max_connections) => permit,
        };
        let Some(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "cannot accept a connection; retrying in 1 s");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                        }
                    }
                    continue;
                }
            },
        };
        // Responses go out in one write; no reason to let Nagle hold back the last segment.
        let _ = stream.set_nodelay(true);
        // Subscribed here, before shutdown can begin, so no connection misses it.
        let closed = closing.subscribe();
        let connections = connections.clone();
        match &acceptor {
            None => {
                tokio::spawn(async move {
                    let io = TimedStream::new(stream, connections.deadlines);
                    let result = connections.serve_http1(io, peer, closed).await;
                    log_end(peer, result);
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    connections.serve_tls(&acceptor, stream, peer, closed).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let _ = closing.send(());
    tokio::select! {
        () = closing.closed() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!(
                "connections still open {} s after shutdown began; not waiting for them",
                SHUTDOWN_GRACE.as_secs()
            );
        }
    }
    Ok(())
}

impl Connections {
    /// One HTTP/1.1 connection (plain or inside TLS), its stream already timed.
    async fn serve_http1<T>(
        &self,
        io: TimedStream<T>,
        peer: SocketAddr,
        closed: watch::Receiver<()>,
    ) -> Result<(), hyper::Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let request_timeout = self.request_timeout;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            within_deadline(
                request_timeout,
                req.method().clone(),
                req.uri().clone(),
                tower::ServiceExt::oneshot(router.clone(), req),
            )
        });
        let connection = self.http1.serve_connection(TokioIo::new(io), service);
        drive(
            connection,
            http1::Connection::graceful_shutdown,
            closed,
            None,
        )
        .await
    }

    /// One HTTPS connection: the handshake within the request-head deadline (from the
    /// accept), then HTTP/2 if the client chose it in ALPN, else HTTP/1.1.
    async fn serve_tls(
        &self,
        acceptor: &tokio_rustls::TlsAcceptor,
        stream: TcpStream,
        peer: SocketAddr,
        closed: watch::Receiver<()>,
    ) {
        let accepted = Instant::now();
        let first_head_by = accepted + self.deadlines.header_read;
        let tls = match tokio::time::timeout_at(first_head_by, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            // Scanners, clients that do not trust the certificate, plain HTTP sent to the
            // HTTPS port: their problem, and a flood of them must not flood the log.
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %peer, "no TLS handshake within the request-head deadline");
                return;
            }
        };
        let result = if tls.get_ref().1.alpn_protocol() == Some(ALPN_H2) {
            self.serve_http2(tls, peer, accepted, closed).await
        } else {
            // The first request head is due by the same deadline as over plain HTTP,
            // counted from the accept: the handshake spends part of it.
            let io = TimedStream::until(tls, self.deadlines, first_head_by);
            self.serve_http1(io, peer, closed).await
        };
        log_end(peer, result);
    }

    /// One HTTP/2 connection: each stream gets the whole-request deadline and the body
    /// limit as an HTTP/1.1 request does; the connection closes (GOAWAY) when no stream
    /// has started within the request-head deadline of the accept, or none has run for the
    /// keep-alive deadline.
    async fn serve_http2<T>(
        &self,
        io: T,
        peer: SocketAddr,
        accepted: Instant,
        closed: watch::Receiver<()>,
    ) -> Result<(), hyper::Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let streams = Arc::new(Streams::new(accepted));
        let router = self.router.clone();
        let request_timeout = self.request_timeout;
        let counted = streams.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let stream = counted.begin();
            req.extensions_mut().insert(ConnectInfo(peer));
            let call = within_deadline(
                request_timeout,
                req.method().clone(),
                req.uri().clone(),
                tower::ServiceExt::oneshot(router.clone(), req),
            );
            async move {
                let response = call.await;
                drop(stream);
                response
            }
        });
        let idle = IdleTimer::new(streams, self.deadlines);
        let connection = self.http2.serve_connection(TokioIo::new(io), service);
        drive(
            connection,
            http2::Connection::graceful_shutdown,
            closed,
            Some(idle),
        )
        .await
    }
}

/// Runs a connection to its end. Shutdown (`closed`) and, for HTTP/2, the idle timer ask
/// it to finish gracefully (the request in progress completes; HTTP/2 sends GOAWAY); a
/// connection that still has not finished when its idle timer fires again is dropped.
async fn drive<C>(
    connection: C,
    graceful: fn(Pin<&mut C>),
    mut closed: watch::Receiver<()>,
    mut idle: Option<IdleTimer>,
) -> Result<(), hyper::Error>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let mut connection = std::pin::pin!(connection);
    let mut signal = std::pin::pin!(closed.changed());
    let mut finishing = false;
    std::future::poll_fn(|cx| {
        if !finishing && signal.as_mut().poll(cx).is_ready() {
            graceful(connection.as_mut());
            finishing = true;
            if let Some(timer) = idle.as_mut() {
                timer.finishing();
            }
        }
        if let Some(timer) = idle.as_mut() {
            if timer.poll_expired(cx).is_ready() {
                if finishing {
                    // Asked to finish and still open with nothing running (e.g. a client
                    // that never acknowledges the GOAWAY's ping): let it go.
                    return Poll::Ready(Ok(()));
                }
                graceful(connection.as_mut());
                finishing = true;
                timer.finishing();
                if timer.poll_expired(cx).is_ready() {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        connection.as_mut().poll(cx)
    })
    .await
}

/// Logs how a connection ended, if with an error.
fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Timeouts, resets and malformed requests: the client's problem, not ours, and
        // a flood of them must not flood the log.
        match std::error::Error::source(&e) {
            Some(cause) => tracing::debug!(
                peer = %peer, error = %e, cause = %cause, "connection closed with an error"
            ),
            None => {
                tracing::debug!(peer = %peer, error = %e, "connection closed with an error")
            }
        }
    }
}

/// A connection slot. Logs the start of an episode at the cap once, and its end once: when
/// a slot is free without waiting again (not at every close while the cap holds).
async fn acquire(
    slots: &Arc<Semaphore>,
    at_cap: &mut bool,
    max_connections: usize,
) -> Option<OwnedSemaphorePermit> {
    match slots.clone().try_acquire_owned() {
        Ok(permit) => {
            if *at_cap {
                *at_cap = false;
                tracing::info!(max_connections, "open connections below the limit again");
            }
            Some(permit)
        }
        Err(TryAcquireError::NoPermits) => {
            if !*at_cap {
                *at_cap = true;
                tracing::warn!(
                    max_connections,
                    "connection limit reached: new connections wait until open ones close \
                     (server.max_connections)"
                );
            }
            slots.clone().acquire_owned().await.ok()
        }
        // Never closed; treated as the end of serving.
        Err(TryAcquireError::Closed) => None,
    }
}

/// Errors of one connection that went away before accept(); nothing to wait for.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// `configured`, or with 0 three quarters of the open-file limit; the other quarter is left
/// for the database, directories, logs and webhooks. The limit is raised to the hard limit
/// either way, so that a configured cap is not cut short by EMFILE.
fn connection_cap(configured: usize) -> usize {
    let open_files = raise_open_file_limit();
    if configured == 0 {
        return (open_files.unwrap_or(1024) / 4 * 3).clamp(1, Semaphore::MAX_PERMITS);
    }
    if let Some(open_files) = open_files.filter(|&limit| configured >= limit) {
        tracing::warn!(
            max_connections = configured,
            open_files,
            "server.max_connections is not below the open-file limit: accepting will fail \
             with `Too many open files` before the cap is reached"
        );
    }
    configured.min(Semaphore::MAX_PERMITS)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
#[cfg(unix)]
fn raise_open_file_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "cannot read the open-file limit");
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            // E.g. an unlimited hard limit above fs.nr_open: keep the soft one.
            tracing::warn!(
                error = %io::Error::last_os_error(),
                soft = limit.rlim_cur,
                hard = limit.rlim_max,
                "cannot raise the open-file limit to the hard limit"
            );
        }
    }
    Some(usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX))
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<usize> {
    None
}

/// The whole-request deadline (body read and handler): a request still running after it
/// gets 503 and its handler is dropped. Applied around the router here rather than as an
/// axum middleware, which would box every request's future once more.
async fn within_deadline(
    limit: Duration,
    method: Method,
    uri: Uri,
    call: impl Future<Output = Result<Response, Infallible>>,
) -> Result<Response, Infallible> {
    let mut call = std::pin::pin!(call);
    // Most requests are answered on their first poll; only those that wait pay for a timer
    // (their deadline runs from that first wait, microseconds after the start).
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    if let Poll::Ready(response) = first {
        return response;
    }
    match tokio::time::timeout(limit, call).await {
        Ok(response) => response,
        Err(_) => {
            tracing::info!(
                %method,
                path = uri.path(),
                "request abandoned after server.request_timeout_seconds"
            );
            Ok(status_message(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the request took too long (over {} s) and was abandoned; \
                     send the body promptly, or retry later",
                    limit.as_secs()
                ),
            ))
        }
    }
}

/// The per-connection read deadlines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// From the first byte of a request (or the accept) to the end of its head.
    pub header_read: Duration,
    /// From a response to the next request's first byte.
    pub keep_alive: Duration,
}

/// The requests of one HTTP/2 connection, for its idle deadline: HTTP/2 frames cannot be
/// read from the bytes as cheaply as HTTP/1.1 heads, so the server counts the requests it
/// runs instead. PINGs and other frames without a request do not keep a connection open.
pub(crate) struct Streams(Mutex<StreamState>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamState {
    /// Requests running now.
    active: usize,
    /// When the last request ended (or the connection was accepted).
    idle_since: Instant,
    /// Whether a request has started: until one does, the request-head deadline applies.
    served: bool,
}

impl Streams {
    fn new(accepted: Instant) -> Self {
        Streams(Mutex::new(StreamState {
            active: 0,
            idle_since: accepted,
            served: false,
        }))
    }

    fn state(&self) -> StreamState {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request starts; it counts until the guard is dropped (its response was produced
    /// or the client reset it).
    fn begin(self: &Arc<Self>) -> StreamGuard {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.active += 1;
        s.served = true;
        StreamGuard(self.clone())
    }
}

struct StreamGuard(Arc<Streams>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut s = self.0 .0.lock().unwrap_or_else(PoisonError::into_inner);
        s.active = s.active.saturating_sub(1);
        if s.active == 0 {
            s.idle_since = Instant::now();
        }
    }
}

/// What an HTTP/2 connection's idle timer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdleCheck {
    /// Its time is up.
    Expired,
    /// Look again then.
    At(Instant),
}

/// The idle decision, the HTTP/2 counterpart of `TimedStream`'s: before the first request,
/// the request-head deadline from the accept; after a request, the keep-alive deadline from
/// its end; none while a request runs (that is the request deadline's business); and once
/// asked to finish (GOAWAY), the request-head deadline from then or from the last request's
/// end, whichever is later.
fn idle_check(
    state: StreamState,
    deadlines: Deadlines,
    finishing_since: Option<Instant>,
    now: Instant,
) -> IdleCheck {
    if state.active > 0 {
        return IdleCheck::At(now + deadlines.keep_alive);
    }
    let (from, limit) = match finishing_since {
        Some(since) => (since.max(state.idle_since), deadlines.header_read),
        None if state.served => (state.idle_since, deadlines.keep_alive),
        None => (state.idle_since, deadlines.header_read),
    };
    let at = from + limit;
    if at <= now {
        IdleCheck::Expired
    } else {
        IdleCheck::At(at)
    }
}

/// The timer of one HTTP/2 connection: ready when [`idle_check`] says its time is up.
struct IdleTimer {
    streams: Arc<Streams>,
    deadlines: Deadlines,
    finishing_since: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
}

impl IdleTimer {
    fn new(streams: Arc<Streams>, deadlines: Deadlines) -> Self {
        let first = streams.state().idle_since + deadlines.header_read;
        IdleTimer {
            streams,
            deadlines,
            finishing_since: None,
            sleep: Box::pin(tokio::time::sleep_until(first)),
        }
    }

    /// The connection was asked to finish: from now on it has the request-head deadline.
    fn finishing(&mut self) {
        self.finishing_since = Some(Instant::now());
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let check = idle_check(
                self.streams.state(),
                self.deadlines,
                self.finishing_since,
                Instant::now(),
            );
            match check {
                IdleCheck::Expired => return Poll::Ready(()),
                IdleCheck::At(at) => {
                    // Re-armed only when it would fire too late or has fired; firing early
                    // just means looking again.
                    if self.sleep.deadline() > at || self.sleep.is_elapsed() {
                        self.sleep.as_mut().reset(at);
                    }
                    ready!(self.sleep.as_mut().poll(cx));
                }
            }
        }
    }
}

/// Where a connection is between requests, as seen from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head: `header_read` applies.
    Head,
    /// Head complete, response not yet written: the request deadline applies instead.
    InRequest,
    /// A response was written; waiting for the next request: `keep_alive` applies.
    Idle,
}

/// A stream whose reads fail with `TimedOut` when a request head or the pause between
/// requests takes too long; hyper then closes the connection. (hyper's own
/// `header_read_timeout` also runs while idle, so it cannot keep both deadlines.)
///
/// Hot path: no allocation per read, no clock read when a head arrives in one read, and
/// the timer is only re-armed when it would fire too late (it re-arms itself lazily when
/// it fires early).
pub(crate) struct TimedStream<T> {
    inner: T,
    deadlines: Deadlines,
    phase: Phase,
    scan: HeadScan,
    /// When the current phase times out; set when a read first has to wait in it.
    deadline: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
}

impl<T> TimedStream<T> {
    pub(crate) fn new(inner: T, deadlines: Deadlines) -> Self {
        // The head deadline of the first request runs from the accept.
        Self::until(inner, deadlines, Instant::now() + deadlines.header_read)
    }

    /// With the first request head due by `deadline` (an HTTPS connection: the accept plus
    /// the head deadline, part of which the handshake spent).
    pub(crate) fn until(inner: T, deadlines: Deadlines, deadline: Instant) -> Self {
        TimedStream {
            inner,
            deadlines,
            phase: Phase::Head,
            scan: HeadScan::Start,
            deadline: Some(deadline),
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    fn bytes_read(&mut self, bytes: &[u8]) {
        match self.phase {
            // Body bytes (or a pipelined request, caught up with after the response).
            Phase::InRequest => return,
            Phase::Idle => {
                self.phase = Phase::Head;
                self.scan = HeadScan::Start;
                self.deadline = None;
            }
            Phase::Head => {}
        }
        if head_complete(&mut self.scan, bytes) {
            self.phase = Phase::InRequest;
            self.deadline = None;
        }
    }

    fn bytes_written(&mut self, first: &[u8], cx: &mut Context<'_>) {
        // A `100 Continue` comes before the request body: the request is still running.
        if self.phase == Phase::InRequest && first.starts_with(b"HTTP/1.1 1") {
            return;
        }
        // Every write of a (streamed) response restarts the idle deadline.
        self.phase = Phase::Idle;
        self.deadline = None;
        // Armed now, with the writer's waker: hyper's last read (during the request) was
        // already pending, so it does not read again after the response until the socket
        // or this timer wakes it. A deadline just set cannot have passed.
        let _ = self.poll_deadline(cx);
    }

    /// Pending until the current phase's deadline, then the error that ends the connection.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (limit, what) = match self.phase {
            Phase::InRequest => return Poll::Pending,
            Phase::Head => (
                self.deadlines.header_read,
                "no complete request head in time",
            ),
            Phase::Idle => (
                self.deadlines.keep_alive,
                "keep-alive connection idle too long",
            ),
        };
        let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + limit);
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if self.sleep.deadline() >= deadline {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
            }
            // Fired for an earlier phase's deadline: wait for this one.
            self.sleep.as_mut().reset(deadline);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                if !fresh.is_empty() {
                    this.bytes_read(fresh);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if written > 0 {
            this.bytes_written(buf, cx);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        if written > 0 {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            this.bytes_written(first, cx);
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// How far the blank line that ends a request head has got, carried across reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadScan {
    /// Nothing but empty lines yet (which servers skip before a request line).
    Start,
    /// Inside a line.
    Text,
    /// Just after a line feed.
    Lf,
    /// Just after a line feed and a carriage return.
    LfCr,
}

/// Feeds the next bytes of a head; true once the blank line ending it (`\r\n\r\n`, or the
/// bare `\n\n` that hyper also accepts) has been seen.
fn head_complete(scan: &mut HeadScan, bytes: &[u8]) -> bool {
    // The usual case: the whole head (without a body) in this read.
    if bytes.ends_with(b"\r\n\r\n")
        && (*scan != HeadScan::Start || !matches!(bytes[0], b'\r' | b'\n'))
    {
        *scan = HeadScan::Start;
        return true;
    }
    let mut state = *scan;
    let mut i = 0;
    while i < bytes.len() {
        if state == HeadScan::Text {
            // Only a line feed changes anything inside a line.
            match bytes[i..].iter().position(|&b| b == b'\n') {
                Some(at) => {
                    i += at + 1;
                    state = HeadScan::Lf;
                    continue;
                }
                None => break,
            }
        }
        state = match (state, bytes[i]) {
            (HeadScan::Lf | HeadScan::LfCr, b'\n') => {
                *scan = HeadScan::Start;
                return true;
            }
            (HeadScan::Lf, b'\r') => HeadScan::LfCr,
            (HeadScan::Start, b'\r' | b'\n') => HeadScan::Start,
            (_, b'\n') => HeadScan::Lf,
            _ => HeadScan::Text,
        };
        i += 1;
    }
    *scan = state;
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn complete_in(parts: &[&[u8]]) -> Option<usize> {
        let mut scan = HeadScan::Start;
        parts.iter().position(|p| head_complete(&mut scan, p))
    }

    #[test]
    fn a_head_in_one_read_is_complete() {
        assert_eq!(
            complete_in(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
            Some(0)
        );
        assert_eq!(
            complete_in(&[b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"]),
            Some(0)
        );
        assert_eq!(complete_in(&[b"GET / HTTP/1.1\nHost: x\n\n"]), Some(0));
    }

    #[test]
    fn the_blank_line_is_found_across_reads() {
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        // Every split point, including inside the final CRLFCRLF.
        for at in 1..head.len() {
            let (a, b) = head.split_at(at);
            assert_eq!(complete_in(&[a, b]), Some(1), "split at {at}");
        }
        let bytes: Vec<&[u8]> = head.chunks(1).collect();
        assert_eq!(complete_in(&bytes), Some(head.len() - 1));
    }

    #[test]
    fn half_a_head_is_not_complete() {
        assert_eq!(
            complete_in(&[b"GET /healthz HTTP/1.1\r\nHost: x\r\n"]),
            None
        );
        assert_eq!(complete_in(&[b"GET / HTTP/1.1\r\n", b"\r"]), None);
        // A CR LF CR without the last LF, then more header text.
        assert_eq!(complete_in(&[b"GET / HTTP/1.1\r\n\r", b"X: y\r\n"]), None);
    }

    #[test]
    fn leading_empty_lines_do_not_end_a_head() {
        assert_eq!(complete_in(&[b"\r\n\r\n"]), None);
        assert_eq!(complete_in(&[b"\r\n", b"\r\n"]), None);
        assert_eq!(
            complete_in(&[b"\r\n", b"GET / HTTP/1.1\r\n", b"\r\n"]),
            Some(2)
        );
        assert_eq!(complete_in(&[b"\r\nGET / HTTP/1.1\r\n\r\n"]), Some(0));
    }

    #[test]
    fn an_http2_connection_is_idle_by_its_requests_not_its_bytes() {
        let deadlines = Deadlines {
            header_read: Duration::from_secs(10),
            keep_alive: Duration::from_secs(60),
        };
        let accepted = Instant::now();
        let s = |active, idle_since, served| StreamState {
            active,
            idle_since,
            served,
        };
        let secs = Duration::from_secs;
        // Before the first request: the head deadline from the accept.
        let fresh = s(0, accepted, false);
        assert_eq!(
            idle_check(fresh, deadlines, None, accepted + secs(3)),
            IdleCheck::At(accepted + secs(10))
        );
        assert_eq!(
            idle_check(fresh, deadlines, None, accepted + secs(10)),
            IdleCheck::Expired
        );
        // A request running: no deadline of the connection's own; look again later.
        let busy = s(2, accepted, true);
        assert_eq!(
            idle_check(busy, deadlines, None, accepted + secs(500)),
            IdleCheck::At(accepted + secs(560))
        );
        // After the last request: keep-alive from its end.
        let ended = accepted + secs(100);
        let idle = s(0, ended, true);
        assert_eq!(
            idle_check(idle, deadlines, None, ended + secs(30)),
            IdleCheck::At(ended + secs(60))
        );
        assert_eq!(
            idle_check(idle, deadlines, None, ended + secs(60)),
            IdleCheck::Expired
        );
        // Asked to finish: the head deadline from then (or from the last request's end).
        let goaway = ended + secs(20);
        assert_eq!(
            idle_check(idle, deadlines, Some(goaway), goaway + secs(1)),
            IdleCheck::At(goaway + secs(10))
        );
        let late = s(0, goaway + secs(5), true);
        assert_eq!(
            idle_check(late, deadlines, Some(goaway), goaway + secs(10)),
            IdleCheck::At(goaway + secs(15))
        );
        assert_eq!(
            idle_check(late, deadlines, Some(goaway), goaway + secs(15)),
            IdleCheck::Expired
        );
    }

    #[test]
    fn a_stream_counts_until_its_guard_is_dropped() {
        let accepted = Instant::now();
        let streams = Arc::new(Streams::new(accepted));
        let one = streams.begin();
        let two = streams.begin();
        assert_eq!(streams.state().active, 2);
        assert!(streams.state().served);
        drop(one);
        assert_eq!(streams.state().active, 1);
        assert_eq!(streams.state().idle_since, accepted);
        drop(two);
        assert_eq!(streams.state().active, 0);
        assert!(streams.state().idle_since >= accepted);
    }

    const SHORT: Deadlines = Deadlines {
        header_read: Duration::from_millis(200),
        keep_alive: Duration::from_millis(600),
    };

    /// A timed server end and the client end of an in-memory connection.
    fn pair() -> (
        TimedStream<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
    ) {
        let (server, client) = tokio::io::duplex(4096);
        (TimedStream::new(server, SHORT), client)
    }

    async fn read_err(server: &mut TimedStream<tokio::io::DuplexStream>) -> io::ErrorKind {
        let mut buf = [0u8; 256];
        loop {
            match server.read(&mut buf).await {
                Ok(0) => panic!("unexpected end of stream"),
                Ok(_) => continue,
                Err(e) => return e.kind(),
            }
        }
    }

    #[tokio::test]
    async fn silence_after_accept_times_out() {
        let (mut server, _client) = pair();
        let started = std::time::Instant::now();
        assert_eq!(read_err(&mut server).await, io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn a_half_head_times_out() {
        let (mut server, mut client) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(read_err(&mut server).await, io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_request_in_progress_has_no_read_deadline() {
        let (mut server, mut client) = pair();
        client
            .write_all(b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(server.read(&mut buf).await.unwrap() > 0);
        // Longer than both deadlines: a slow body is the request deadline's business.
        let waited = tokio::time::timeout(Duration::from_millis(900), server.read(&mut buf)).await;
        assert!(waited.is_err(), "the read ended: {waited:?}");
    }

    #[tokio::test]
    async fn a_100_continue_keeps_the_request_running() {
        let (mut server, mut client) = pair();
        client
            .write_all(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        assert!(server.read(&mut buf).await.unwrap() > 0);
        server
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .unwrap();
        client.write_all(b"body").await.unwrap();
        assert!(server.read(&mut buf).await.unwrap() > 0);
        let waited = tokio::time::timeout(Duration::from_millis(900), server.read(&mut buf)).await;
        assert!(waited.is_err(), "the read ended: {waited:?}");
    }

    #[tokio::test]
    async fn idle_after_a_response_gets_the_keep_alive_deadline() {
        let (mut server, mut client) = pair();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        assert!(server.read(&mut buf).await.unwrap() > 0);
        server
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        assert_eq!(read_err(&mut server).await, io::ErrorKind::TimedOut);
        // The keep-alive deadline (600 ms), not the head one (200 ms).
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn the_next_request_restarts_the_head_deadline() {
        let (mut server, mut client) = pair();
        let mut buf = [0u8; 256];
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(server.read(&mut buf).await.unwrap() > 0);
        server
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        // Idle longer than the head deadline, then half a head.
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert!(server.read(&mut buf).await.unwrap() > 0);
        let started = std::time::Instant::now();
        assert_eq!(read_err(&mut server).await, io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() < Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
    }
}
