//! The listener: accepting connections, TLS, and what every response says
//! about itself. [`serve`] replaces `axum::serve` because a gateway on a
//! hostile network needs bounds that `axum::serve` does not offer:
//!
//! - **Timeouts.** HTTP/1.1 connections are watched in two phases. Between
//!   requests (and before the first) a connection may wait
//!   `http.idle_timeout_seconds` for the first byte of the next request;
//!   from that byte on it has `http.header_read_timeout_seconds` to deliver
//!   the whole head. hyper's own `header_read_timeout` runs too, set to the
//!   sum of both, as a backstop: on its own it counts from the moment the
//!   connection becomes idle, so it would also cut keep-alive connections
//!   at the header timeout, racing the connection reuse of a proxy in
//!   front. HTTP/2 connections are closed after the idle timeout with no
//!   stream in flight; hyper pings them to find dead peers. A TLS
//!   handshake gets the header timeout. A request in flight (a long poll,
//!   an upload) is never cut by these: bodies have limits of their own.
//! - **A cap on connections** (`http.max_connections`): at the cap the
//!   loop stops accepting until a connection closes, so newcomers wait in
//!   the kernel's listen backlog instead of being answered with an error
//!   the gateway would need resources to produce.
//! - **A bounded drain.** On stop, the listener closes, every connection is
//!   asked to finish (HTTP/1.1: after its current response; HTTP/2:
//!   GOAWAY), and whatever is still open after
//!   `http.shutdown_grace_seconds` is closed.
//! - **TLS** with rustls from PEM files, ALPN `h2` and `http/1.1`, the
//!   pair reloaded on SIGHUP and when the files change ([`Tls`]).
//!
//! The peer address reaches handlers as `ConnectInfo<SocketAddr>`, as with
//! `axum::serve`. See docs/security.md for the operator's view.
use crate::base::config::{HttpConfig, TlsConfig};
use anyhow::Context;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;

/// The connection limits, from `[http]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    /// How long a write may wait for the client to read before the
    /// connection is closed.
    pub write_timeout: Duration,
}

impl Limits {
    pub fn from_config(c: &HttpConfig) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(c.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(c.idle_timeout_seconds),
            max_connections: c.max_connections,
            shutdown_grace: Duration::from_secs(c.shutdown_grace_seconds),
            write_timeout: Duration::from_secs(c.write_timeout_seconds),
        }
    }
}

/// What every connection task shares.
struct Shared {
    app: Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    /// The same settings, fixed to one protocol each: the protocol is
    /// known before serving (ALPN, or plain HTTP/1.1), so hyper never has
    /// to sniff for it.
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

fn builders(limits: &Limits) -> (auto::Builder<TokioExecutor>, auto::Builder<TokioExecutor>) {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // The backstop: hyper counts from when the connection is ready for
        // a request, so it covers the idle wait and the head together.
        .header_read_timeout(
            limits.idle_timeout + limits.header_read_timeout + Duration::from_secs(1),
        );
    b.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20))
        // Streams a single connection may run at once (hyper's default is
        // 200); with the connection cap it bounds the requests in flight.
        .max_concurrent_streams(100)
        .max_header_list_size(64 * 1024);
    (b.clone().http1_only(), b.http2_only())
}

/// Serves `app` on `listener` until `stop` is cancelled, then drains (see
/// the module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    stop: CancellationToken,
) {
    let (http1, http2) = builders(&limits);
    let shared = Arc::new(Shared {
        app,
        limits,
        tls,
        http1,
        http2,
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    loop {
        // At the cap, no accept: the kernel's backlog holds the rest.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    accept_failed(&e, &stop).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Responses are written whole; waiting to coalesce them only adds
        // latency.
        let _ = tcp.set_nodelay(true);
        conns.spawn(connection(tcp, peer, shared.clone(), stop.clone(), slot));
        while conns.try_join_next().is_some() {}
    }
    // New connections are refused from here on.
    drop(listener);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            grace_s = limits.shutdown_grace.as_secs(),
            "closing the connections still open after the shutdown grace"
        );
        conns.shutdown().await;
    }
}

/// An accept error. Those of one connection (reset before it was
/// accepted) are no reason to wait; the others (out of file descriptors
/// or memory) would only repeat at once.
async fn accept_failed(e: &std::io::Error, stop: &CancellationToken) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept a connection; retrying in 100 ms");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(100)) => {}
        () = stop.cancelled() => {}
    }
}

/// One connection, holding one of the `max_connections` slots until it
/// ends.
async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let Some(tls) = shared.tls.clone() else {
        return drive(tcp, false, peer, &shared, &stop).await;
    };
    let handshake = tokio::select! {
        r = tokio::time::timeout(shared.limits.header_read_timeout, tls.acceptor.accept(tcp)) => r,
        () = stop.cancelled() => return,
    };
    match handshake {
        Ok(Ok(stream)) => {
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            drive(stream, h2, peer, &shared, &stop).await;
        }
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

async fn drive<I>(io: I, h2: bool, peer: SocketAddr, shared: &Shared, stop: &CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(!h2));
    let phases = activity.phase.subscribe();
    let app = shared.app.clone();
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = requests.begin();
        let call = app.clone().oneshot(req);
        async move {
            let response = call.await?;
            Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
        }
    });
    let builder = if h2 { &shared.http2 } else { &shared.http1 };
    let conn = builder.serve_connection(
        TokioIo::new(Watched {
            io,
            activity,
            write_timeout: shared.limits.write_timeout,
            stalled: None,
        }),
        service,
    );
    tokio::pin!(conn);
    let expiry = expiry(
        phases,
        shared.limits.idle_timeout,
        shared.limits.header_read_timeout,
    );
    tokio::pin!(expiry);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        why = &mut expiry => {
            tracing::debug!(reason = why.as_str(), "closing a connection");
            if why == Expired::Idle {
                // Nothing in flight: let hyper say goodbye (GOAWAY, or a
                // TLS close_notify), briefly.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await;
            }
            return;
        }
        () = stop.cancelled() => {}
    }
    // Stopping: the response in flight is finished, then the connection
    // closes; the accept loop cuts this short after the grace period.
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = &mut expiry => {}
    }
}

/// Where a connection stands, for its timeouts.
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// Requests whose response has not been written out yet.
    in_flight: usize,
    /// When the connection last became idle (or opened).
    idle_since: Instant,
    /// When the first byte of the next request head arrived (HTTP/1.1).
    head_started: Option<Instant>,
}

struct Activity {
    phase: watch::Sender<Phase>,
    /// Set while idle on HTTP/1.1: the next byte read starts a head.
    awaiting_head: AtomicBool,
    /// HTTP/1.1 (bytes between requests start a head) or HTTP/2 (they are
    /// pings and settings).
    reads_start_heads: bool,
}

impl Activity {
    fn new(reads_start_heads: bool) -> Self {
        let (phase, _) = watch::channel(Phase {
            in_flight: 0,
            idle_since: Instant::now(),
            head_started: None,
        });
        Self {
            phase,
            awaiting_head: AtomicBool::new(reads_start_heads),
            reads_start_heads,
        }
    }

    fn bytes_read(&self) {
        if self.awaiting_head.load(Ordering::Relaxed)
            && self.awaiting_head.swap(false, Ordering::Relaxed)
        {
            self.phase.send_if_modified(|p| {
                let idle = p.in_flight == 0;
                if idle {
                    p.head_started = Some(Instant::now());
                }
                idle
            });
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.awaiting_head.store(false, Ordering::Relaxed);
        self.phase.send_if_modified(|p| {
            p.in_flight += 1;
            p.head_started = None;
            p.in_flight == 1
        });
        Busy(self.clone())
    }
}

/// A request in flight: from the call of the service until its response
/// body has been written out (or dropped).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.phase.send_if_modified(|p| {
            p.in_flight = p.in_flight.saturating_sub(1);
            let idle = p.in_flight == 0;
            if idle {
                p.idle_since = Instant::now();
                p.head_started = None;
                activity
                    .awaiting_head
                    .store(activity.reads_start_heads, Ordering::Relaxed);
            }
            idle
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Idle,
    Header,
}

impl Expired {
    fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle timeout",
            Self::Header => "header read timeout",
        }
    }
}

/// Completes when the connection has been idle, or reading a request
/// head, for too long; never while a request is in flight.
async fn expiry(mut phases: watch::Receiver<Phase>, idle: Duration, header: Duration) -> Expired {
    loop {
        let p = *phases.borrow_and_update();
        let deadline = match (p.in_flight, p.head_started) {
            (0, Some(started)) => Some((started + header, Expired::Header)),
            (0, None) => Some((p.idle_since + idle, Expired::Idle)),
            _ => None,
        };
        let changed = match deadline {
            Some((at, why)) => tokio::select! {
                () = tokio::time::sleep_until(at) => return why,
                changed = phases.changed() => changed,
            },
            None => phases.changed().await,
        };
        if changed.is_err() {
            // The connection is gone; so is whoever polls this.
            std::future::pending::<()>().await;
        }
    }
}

/// A response body that keeps its request counted as in flight until it
/// has been written out.
struct Tracked {
    body: axum::body::Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's byte stream, telling [`Activity`] when bytes arrive,
/// and failing a write that the client leaves unread for `write_timeout`
/// (a client that sends requests but never reads the answers would
/// otherwise hold its connection, and a slot, for ever).
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
    write_timeout: Duration,
    /// Running while a write (or flush) waits for the client.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<I> Watched<I> {
    /// Passes on a write's outcome; while it is pending, the stall timer
    /// runs, and once it fires the write fails.
    fn timed<T>(
        &mut self,
        cx: &mut TaskContext<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.write_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing within the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.timed(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.timed(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.timed(cx, r)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// HTTPS: the acceptor and the certificate it presents, which [`Tls::reload`]
/// replaces while the gateway runs. A pair that fails to load leaves the
/// previous one serving.
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<CurrentCert>,
    sessions: Arc<Sessions>,
    provider: Arc<CryptoProvider>,
    cert_file: PathBuf,
    key_file: PathBuf,
    /// The files as they were when last loaded (or tried).
    seen: Mutex<(Option<Stamp>, Option<Stamp>)>,
}

/// What tells a file changed: its modification time, size and inode (a
/// file renamed into place, or a symlink switched to a new target, as
/// mounted secrets are, is a new inode even when its time is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

/// How many TLS sessions are kept for resumption.
const SESSIONS: usize = 1024;

/// The TLS sessions clients may resume, forgotten at each reload: a
/// resumed session skips the certificate, so without this a client could
/// go on with the replaced one (which may have been replaced because its
/// key leaked).
struct Sessions(RwLock<Arc<ServerSessionMemoryCache>>);

impl Sessions {
    fn current(&self) -> Arc<ServerSessionMemoryCache> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn forget(&self) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) =
            ServerSessionMemoryCache::new(SESSIONS);
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

impl StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.current().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// The certificate and key handed to every handshake.
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl std::fmt::Debug for CurrentCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurrentCert")
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

impl Tls {
    /// Loads the pair `[tls]` names; an error names the file and what is
    /// wrong with it, never the key's content.
    pub fn load(config: &TlsConfig) -> anyhow::Result<Arc<Tls>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert_file = PathBuf::from(&config.cert_file);
        let key_file = PathBuf::from(&config.key_file);
        let seen = (stamp(&cert_file), stamp(&key_file));
        let pair = load_pair(&cert_file, &key_file, &provider)?;
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(pair))));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS: the protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let sessions = Arc::new(Sessions(RwLock::new(ServerSessionMemoryCache::new(
            SESSIONS,
        ))));
        server.session_storage = sessions.clone();
        Ok(Arc::new(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            current,
            sessions,
            provider,
            cert_file,
            key_file,
            seen: Mutex::new(seen),
        }))
    }

    /// Loads the files again and serves the new pair from the next
    /// handshake on; on failure logs why and keeps the previous pair.
    /// Returns whether the new pair is served. Blocking (file reads).
    pub fn reload(&self, why: &str) -> bool {
        let seen = (stamp(&self.cert_file), stamp(&self.key_file));
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = seen;
        match load_pair(&self.cert_file, &self.key_file, &self.provider) {
            Ok(pair) => {
                *self
                    .current
                    .0
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
                self.sessions.forget();
                tracing::info!(trigger = why, "TLS: serving the new certificate");
                true
            }
            Err(e) => {
                tracing::error!(
                    trigger = why,
                    error = %format!("{e:#}"),
                    "TLS: the new certificate files cannot be used; still serving the previous certificate"
                );
                false
            }
        }
    }

    /// Reloads when either file changed since it was last loaded (or
    /// tried: a broken pair is reported once, not on every check).
    /// Blocking.
    fn reload_if_changed(&self) {
        let now = (stamp(&self.cert_file), stamp(&self.key_file));
        let changed = *self.seen.lock().unwrap_or_else(PoisonError::into_inner) != now;
        if changed {
            self.reload("the certificate files changed");
        }
    }

    /// Checks the files every `every` until `stop`.
    pub async fn watch(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let tls = self.clone();
            let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
        }
    }
}

fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<CertifiedKey> {
    let c = cert_file.display();
    let k = key_file.display();
    let pem = std::fs::read(cert_file).with_context(|| format!("cannot read tls.cert_file {c}"))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("tls.cert_file {c} is not a valid PEM file"))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "tls.cert_file {c} holds no certificate (a PEM CERTIFICATE block)"
    );
    let key_pem =
        std::fs::read(key_file).with_context(|| format!("cannot read tls.key_file {k}"))?;
    warn_if_readable_by_others(key_file);
    // The parser's error may quote the file's content: it is not repeated.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        anyhow::anyhow!("tls.key_file {k} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!("tls.key_file {k} and tls.cert_file {c} cannot be used together: {e}")
    })
}

fn warn_if_readable_by_others(key_file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(key_file) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %key_file.display(),
                    "tls.key_file can be read by other users than its owner; make it 0600"
                );
            }
        }
    }
}

/// The headers [`security_headers`] adds.
#[derive(Clone)]
pub struct ResponseHeaders {
    hsts: Option<HeaderValue>,
}

impl ResponseHeaders {
    pub fn new(config: &crate::base::config::Config) -> Self {
        let hsts = config.tls.enabled().then(|| {
            HeaderValue::from_str(&format!("max-age={}", config.tls.hsts_max_age_seconds))
                .unwrap_or_else(|_| HeaderValue::from_static("max-age=31536000"))
        });
        Self { hsts }
    }
}

/// Paths whose responses may carry person data, tokens or secrets: never
/// stored by a cache, whatever the handler says.
fn never_cached(path: &str) -> bool {
    ["/api/", "/oauth2/", "/scim/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// A middleware for every response: no MIME sniffing, no referrer, no
/// framing (`frame-ancestors 'none'`, added beside a page's own
/// Content-Security-Policy unless that one sets `frame-ancestors`;
/// browsers enforce every policy sent), HSTS over TLS, and
/// `Cache-Control: no-store` on everything but a response outside
/// [`never_cached`] whose handler chose its own caching.
pub async fn security_headers(
    State(config): State<ResponseHeaders>,
    req: Request,
    next: Next,
) -> Response {
    let sensitive = never_cached(req.uri().path());
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let framing_set = h.get_all(header::CONTENT_SECURITY_POLICY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.to_ascii_lowercase().contains("frame-ancestors"))
    });
    if !framing_set {
        h.append(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    if sensitive || !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(hsts) = &config.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_data_paths_are_never_cached() {
        for p in ["/api/v1/people/E1", "/oauth2/token", "/scim/v2/Users"] {
            assert!(never_cached(p), "{p}");
        }
        for p in ["/healthz", "/openapi.json", "/apiary", "/"] {
            assert!(!never_cached(p), "{p}");
        }
    }

    #[tokio::test]
    async fn the_idle_timeout_waits_while_a_request_is_in_flight() {
        let activity = Arc::new(Activity::new(true));
        let rx = activity.phase.subscribe();
        let busy = activity.begin();
        let idle = Duration::from_millis(50);
        let e = expiry(rx, idle, Duration::from_secs(30));
        tokio::pin!(e);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut e)
                .await
                .is_err(),
            "nothing expires while a request is in flight"
        );
        drop(busy);
        let why = tokio::time::timeout(Duration::from_millis(500), &mut e)
            .await
            .unwrap();
        assert_eq!(why, Expired::Idle);
    }

    #[tokio::test]
    async fn a_started_head_gets_the_header_timeout_not_the_idle_one() {
        let activity = Arc::new(Activity::new(true));
        let rx = activity.phase.subscribe();
        activity.bytes_read();
        let why = tokio::time::timeout(
            Duration::from_millis(500),
            expiry(rx, Duration::from_secs(30), Duration::from_millis(50)),
        )
        .await
        .unwrap();
        assert_eq!(why, Expired::Header);
    }
}
