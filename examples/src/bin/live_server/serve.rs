//! The one serve loop of `live_server`'s listeners (the application's and the admin's):
//! a header read timeout, a cap on open connections below the descriptor limit, and a
//! graceful shutdown that answers every request already received.
//!
//! Built on hyper's HTTP/1 connection directly rather than `axum::serve`, for three
//! things that one cannot do:
//! - a header read timeout kept by the connection cap's own bookkeeping rather than by
//!   a timer per request (hyper's arms one for each request head, a boxed sleep in
//!   Tokio's timer wheel): a connection that has waited longer than the timeout for a
//!   complete request head — a new one, or a keep-alive one idle between requests — is
//!   closed by a sweep that looks at the open connections a few times per timeout;
//! - a cap on connections, so the descriptors kept in reserve stay free for config
//!   files, the state dir and the watcher. At the cap, a new connection makes room by
//!   closing the connection that has waited longest for a request head (a slow client,
//!   or a keep-alive one idle between requests); a connection serving a request or an
//!   event stream is never closed for this. Only when every connection is serving is a
//!   new one closed at once. So idle connections piling up cannot lock real requests
//!   out until the header read timeout frees them;
//! - on shutdown, a connection whose request bytes already sit in the socket is served
//!   (with `Connection: close`) instead of being closed unread, and the connections
//!   still waiting in the listen backlog are accepted and served too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use eac_accessor::Errors;
use eac_accessor::reload::ReloadConfig;
use eac_accessor::settings::EnvSettings;
use futures_util::StreamExt;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Descriptors kept free of connections: config files, the state dir, the watcher, logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Descriptors one connection holds: its socket, and the second handle `connection`
/// keeps to see, at shutdown, whether a request waits unread.
const DESCRIPTORS_PER_CONNECTION: u64 = 2;

/// How long a new connection waits for the slot of the connection it closed to make
/// room (that connection's task only has to drop its socket: microseconds).
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Timeouts and limits of the serve loop, from the environment ([`settings_from_env`]).
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    /// A request head must be complete within this (`EAC_HEADER_READ_TIMEOUT_MS`).
    pub(crate) header_read_timeout: Duration,
    /// Open connections at most, across listeners (`EAC_MAX_CONNECTIONS`).
    pub(crate) max_connections: usize,
    /// How long shutdown waits for open requests (`EAC_SHUTDOWN_GRACE_MS`).
    pub(crate) grace: Duration,
}

const MAX_CONNECTIONS_ENV: &str = "EAC_MAX_CONNECTIONS";
const HEADER_READ_TIMEOUT_ENV: &str = "EAC_HEADER_READ_TIMEOUT_MS";
const GRACE_ENV: &str = "EAC_SHUTDOWN_GRACE_MS";

/// The reload coordinator's settings and the serve loop's, from the environment: every
/// bad variable of both is reported at once.
pub(crate) fn settings_from_env() -> Result<(ReloadConfig, ServeConfig), Errors> {
    settings(|name| std::env::var(name).ok(), raise_descriptor_limit())
}

fn settings(
    var: impl Fn(&str) -> Option<String>,
    descriptors: u64,
) -> Result<(ReloadConfig, ServeConfig), Errors> {
    let reload = ReloadConfig::from_vars(&var);
    let serve = ServeConfig::read(EnvSettings::from_vars(&var), descriptors);
    let errors = [reload.as_ref().err(), serve.as_ref().err()]
        .into_iter()
        .flatten()
        .flatten()
        .cloned()
        .collect();
    match Errors::from_vec(errors) {
        Some(errors) => Err(errors),
        None => Ok((reload?, serve?)),
    }
}

impl ServeConfig {
    /// The settings `env` gives, with `descriptors` open files allowed (the connection
    /// cap stays below that).
    fn read(
        mut env: EnvSettings<impl Fn(&str) -> Option<String>>,
        descriptors: u64,
    ) -> Result<ServeConfig, Errors> {
        // The cap must bite before the descriptors run out: past them, accept fails and
        // no connection can be made room for.
        let room =
            (descriptors.saturating_sub(RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_CONNECTION).max(16);
        let requested = env.parse(MAX_CONNECTIONS_ENV, |v| {
            v.parse::<u64>()
                .map_err(|_| "a whole number of connections")
        });
        let max_connections = match requested {
            Some(0) => {
                env.reject(
                    MAX_CONNECTIONS_ENV,
                    "EAC_MAX_CONNECTIONS=0 would refuse every connection: give at least 1, or \
                     unset it for the default (half the descriptor limit)",
                );
                room
            }
            Some(n) => {
                if n > room {
                    tracing::warn!(
                        requested = n,
                        allowed = room,
                        "EAC_MAX_CONNECTIONS is above what the descriptor limit, less the reserve, allows (two per connection); using the latter"
                    );
                }
                n.min(room)
            }
            None => room,
        };
        let default_header_read_timeout = Duration::from_secs(30);
        let header_read_timeout = match env.millis(HEADER_READ_TIMEOUT_ENV) {
            Some(Duration::ZERO) => {
                env.reject(
                    HEADER_READ_TIMEOUT_ENV,
                    "EAC_HEADER_READ_TIMEOUT_MS=0 would drop every connection before its \
                     first request: give the longest wait for a request head in milliseconds, \
                     or unset it for the default (30000)",
                );
                default_header_read_timeout
            }
            other => other.unwrap_or(default_header_read_timeout),
        };
        let grace = env.millis(GRACE_ENV).unwrap_or(Duration::from_secs(10));
        env.finish(ServeConfig {
            header_read_timeout,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            grace,
        })
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one, as Go's runtime does; returns the
/// soft limit in force.
fn raise_descriptor_limit() -> u64 {
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return 1024;
    };
    match rlimit::increase_nofile_limit(hard) {
        Ok(now) => {
            tracing::info!(soft_before = soft, soft = now, hard, "descriptor limit");
            now
        }
        Err(e) => {
            tracing::warn!(soft, hard, error = %e, "cannot raise the descriptor limit");
            soft
        }
    }
}

/// One listener and the routes it serves.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) listener: TcpListener,
    pub(crate) router: Router,
    pub(crate) name: &'static str,
}

/// Serves every listener until `stop` turns true, then shuts down gracefully within
/// the grace period.
pub(crate) async fn serve(
    listeners: Vec<Listener>,
    config: ServeConfig,
    stop: watch::Receiver<bool>,
) {
    let cap = Arc::new(Cap {
        slots: Arc::new(Semaphore::new(config.max_connections)),
        waiting: Waiting::new(),
        evicted: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let sweep = tokio::spawn(header_read_timeout(
        Arc::clone(&cap),
        config.header_read_timeout,
    ));
    let mut loops = JoinSet::new();
    for listener in listeners {
        loops.spawn(accept_loop(
            listener,
            config.clone(),
            Arc::clone(&cap),
            stop.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    sweep.abort();
}

/// The cap on open connections, shared by every listener.
#[derive(Debug)]
struct Cap {
    /// One permit per connection allowed open; a connection holds its permit until
    /// its socket is closed, so the cap bounds the descriptors connections use.
    slots: Arc<Semaphore>,
    /// The connections waiting for a request head, the first candidates to close.
    waiting: Waiting,
    /// Connections closed to make room (logged the first time, then at powers of two).
    evicted: AtomicU64,
    /// New connections closed for lack of room (logged likewise).
    refused: AtomicU64,
}

impl Cap {
    /// A slot for a new connection: a free one, or else the one of the connection that
    /// has waited longest for a request head, which is closed for it. `None` when every
    /// connection is serving a request (or the closed one's slot does not come back in
    /// time): the new connection is then closed at once.
    async fn admit(&self, listener: &'static str, max: usize) -> Option<OwnedSemaphorePermit> {
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(slot);
        }
        if self.waiting.evict_oldest() {
            if let Some(n) = tally(&self.evicted) {
                tracing::warn!(
                    listener,
                    max,
                    evicted = n,
                    "connection cap reached; closing the connections waiting longest for a request head"
                );
            }
            // The semaphore is fair and every waiter closed one connection: a slot
            // comes back for each, as soon as the closed connection drops its socket.
            let slot = Arc::clone(&self.slots).acquire_owned();
            if let Ok(Ok(slot)) = tokio::time::timeout(EVICTION_WAIT, slot).await {
                return Some(slot);
            }
        }
        if let Some(n) = tally(&self.refused) {
            tracing::warn!(
                listener,
                max,
                refused = n,
                "connection cap reached with every connection serving; closing new connections"
            );
        }
        None
    }
}

/// Counts one more in `counter`; the count when it is one to log: the first, then
/// each power of two.
fn tally(counter: &AtomicU64) -> Option<u64> {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    n.is_power_of_two().then_some(n)
}

/// The open connections waiting for a request head — the first one, or the next one
/// on a keep-alive connection — oldest first, each with the means to close it.
///
/// A keep-alive connection idle between requests counts as waiting, like a new one:
/// it holds a slot and serves nobody, and were it spared, a client could pin the whole
/// cap for the header read timeout by sending one request per connection first. It
/// waits from the moment hyper has taken the whole of its last response (whose last
/// bytes may still be on their way out), so it comes after every connection already
/// waiting and is the last to be chosen.
#[derive(Debug)]
struct Waiting {
    /// What a connection's waiting time is counted from.
    epoch: std::time::Instant,
    /// Every open connection, by id: added when it opens and removed when it closes,
    /// read through only at the cap. A request itself takes no lock: it sets or clears
    /// its connection's tick.
    open: Mutex<HashMap<u64, Arc<Tracked>>>,
    /// The last connection id handed out.
    next_id: AtomicU64,
}

impl Waiting {
    fn new() -> Waiting {
        Waiting {
            epoch: std::time::Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::default(),
        }
    }

    /// Now, in nanoseconds since the epoch, plus one (0 says "not waiting").
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<Tracked>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the connection that has waited longest; false if none waits.
    fn evict_oldest(&self) -> bool {
        let open = self.open();
        loop {
            let oldest = open
                .values()
                .filter_map(|t| match t.since.load(Ordering::Acquire) {
                    0 => None,
                    since => Some((since, t)),
                })
                .min_by_key(|(since, _)| *since);
            let Some((since, tracked)) = oldest else {
                return false;
            };
            // Closed, unless a request head arrived since it was looked at (then the
            // next oldest is looked for).
            if tracked.close_waiting(since) {
                return true;
            }
        }
    }

    /// Closes every connection that has waited longer than `timeout` for a request head;
    /// how many.
    fn close_late(&self, timeout: Duration) -> usize {
        let late = self
            .now()
            .saturating_sub(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
        self.open()
            .values()
            .filter(|t| {
                let since = t.since.load(Ordering::Acquire);
                since != 0 && since <= late && t.close_waiting(since)
            })
            .count()
    }
}

/// Closes, every quarter of `timeout` (at least every 10 ms, at most every second), the
/// connections that have waited longer than `timeout` for a complete request head.
async fn header_read_timeout(cap: Arc<Cap>, timeout: Duration) {
    let every = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let closed = cap.waiting.close_late(timeout);
        if closed > 0 {
            tracing::debug!(closed, "request heads late past the header read timeout");
        }
    }
}

/// One connection's place among the [`Waiting`] ones.
#[derive(Debug)]
struct Tracked {
    cap: Arc<Cap>,
    /// Its key among the open connections.
    id: u64,
    /// Notified when the connection is to close to make room.
    close: Notify,
    /// When it began waiting ([`Waiting::now`]), 0 while it serves (or once it is closing).
    since: AtomicU64,
    /// Its socket is being closed: it never waits again.
    closed: AtomicBool,
}

impl Tracked {
    /// A new connection: it waits for its first request head.
    fn new(cap: Arc<Cap>) -> Arc<Tracked> {
        let id = cap.waiting.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let tracked = Arc::new(Tracked {
            cap,
            id,
            close: Notify::new(),
            since: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        tracked.cap.waiting.open().insert(id, Arc::clone(&tracked));
        tracked.wait();
        tracked
    }

    fn wait(&self) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.since.store(self.cap.waiting.now(), Ordering::Release);
    }

    /// Closes the connection if it still waits since `since`: false when a request head
    /// arrived meanwhile. One closed and then served closes anyway.
    fn close_waiting(&self, since: u64) -> bool {
        let claimed = self
            .since
            .compare_exchange(since, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if claimed {
            // Stores the permit if the connection is not polling it right now.
            self.close.notify_one();
        }
        claimed
    }

    /// Its request head is complete: it serves until the response is handed over.
    fn serving(self: &Arc<Tracked>) -> Serving {
        self.since.store(0, Ordering::Release);
        Serving(Arc::clone(self))
    }

    /// The connection's end: out of the open connections for good.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.since.store(0, Ordering::Release);
        self.cap.waiting.open().remove(&self.id);
    }
}

/// A request being served; the connection waits again once it is dropped (with the
/// response body, when hyper has sent it, or with the request if it ends unanswered).
#[derive(Debug)]
struct Serving(Arc<Tracked>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.wait();
    }
}

/// A response body that keeps its connection out of [`Waiting`] until it is sent: an
/// event stream is never closed to make room.
#[derive(Debug)]
struct Answer {
    body: Body,
    _serving: Serving,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

async fn accept_loop(
    Listener {
        listener,
        router,
        name,
    }: Listener,
    config: ServeConfig,
    cap: Arc<Cap>,
    mut stop: watch::Receiver<bool>,
) {
    // Every handler made a route (with the layers around it) once, here, as
    // `Router::into_make_service` does for `axum::serve`: a router called as built does
    // that again for each request (a clone, a box and the layers applied per request).
    let router: Router = router.with_state(());
    let mut connections = JoinSet::new();
    let conn_stop = stop.clone();
    let start = async |connections: &mut JoinSet<()>, tcp: TcpStream, peer: SocketAddr| {
        // Awaited here rather than in the connection's task, so that at most one
        // connection per listener is open beyond the cap, for the moment it takes the
        // connection closed for it to drop its socket.
        let Some(slot) = cap.admit(name, config.max_connections).await else {
            return;
        };
        let router = router.clone();
        let stop = conn_stop.clone();
        let tracked = Tracked::new(Arc::clone(&cap));
        connections.spawn(async move {
            connection(tcp, peer, router, stop, tracked).await;
            drop(slot);
        });
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => start(&mut connections, tcp, peer).await,
                Err(e) => {
                    // Out of descriptors or a reset before accept: keep serving.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stopped(&mut stop) => break,
        }
    }
    // The grace counts from the signal: neither a connect flood nor slow requests hold the
    // process past it.
    let deadline = tokio::time::Instant::now() + config.grace;
    // Connections that completed their handshake before the signal wait in the backlog:
    // accept them too (a plain non-blocking accept, until the backlog is empty — or the
    // deadline, when clients keep connecting).
    if let Ok(backlog) = listener.into_std() {
        while let Some((tcp, peer)) = from_backlog(&backlog, deadline) {
            start(&mut connections, tcp, peer).await;
        }
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline, drained).await.is_err() {
        tracing::warn!(
            listener = name,
            open = connections.len(),
            "connections still open after the grace period; closing them"
        );
        connections.shutdown().await;
    }
}

/// The next connection waiting in `backlog` (non-blocking), until the backlog is empty
/// or `deadline` has passed — whichever comes first, so that clients that keep
/// connecting, or starts that wait for room at the cap, cannot hold shutdown longer.
fn from_backlog(
    backlog: &std::net::TcpListener,
    deadline: tokio::time::Instant,
) -> Option<(TcpStream, SocketAddr)> {
    while tokio::time::Instant::now() < deadline {
        let (tcp, peer) = backlog.accept().ok()?;
        let _ = tcp.set_nonblocking(true);
        if let Ok(tcp) = TcpStream::from_std(tcp) {
            return Some((tcp, peer));
        }
    }
    None
}

/// Serves one connection; on shutdown, finishes what it received, then closes. Closes
/// at once when `tracked` is chosen to make room for a new connection.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
    tracked: Arc<Tracked>,
) {
    // Out of the queue for good however this ends (declared before `conn`, so dropped
    // after it and the response bodies it holds).
    let _closing = Closing(Arc::clone(&tracked));
    let tracked_close = Arc::clone(&tracked);
    // A second handle on the socket, to see whether a request waits unread at shutdown.
    let Ok(std) = tcp.into_std() else { return };
    let probe = std.try_clone();
    let Ok(tcp) = TcpStream::from_std(std) else {
        return;
    };
    let ending = stop.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // The head is complete: not a candidate to close until the response is sent.
        let serving = tracked.serving();
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let ending = ending.clone();
        async move {
            let response = router
                .oneshot(request.map(Body::new))
                .await
                .unwrap_or_else(|e: Infallible| match e {});
            let (parts, body) = finish(response, ending).into_parts();
            let answer = Answer {
                body,
                _serving: serving,
            };
            Ok::<_, Infallible>(Response::from_parts(parts, answer))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // The header read timeout is the sweep's (`header_read_timeout`), not a timer's.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = tracked_close.close.notified() => return,
        () = stopped(&mut stop) => {}
    }
    // Idle with nothing received: close now. A request whose bytes already arrived is
    // read and answered; its response carries `Connection: close`, which ends it.
    let waiting = probe.is_ok_and(|p| matches!(p.peek(&mut [0u8; 1]), Ok(n) if n > 0));
    if !waiting {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        _ = conn => {}
        () = tracked_close.close.notified() => {}
    }
}

/// Takes the connection out of [`Waiting`] when dropped.
#[derive(Debug)]
struct Closing(Arc<Tracked>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Resolves once shutdown has begun (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// After shutdown began, every response closes its connection; an event stream ends
/// at shutdown instead of holding the process up.
fn finish(response: Response<Body>, stop: watch::Receiver<bool>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    if *stop.borrow() {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    let streaming = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        return Response::from_parts(parts, body);
    }
    let mut stop = stop;
    let ended = async move { stopped(&mut stop).await };
    let body = Body::from_stream(body.into_data_stream().take_until(ended));
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each start waits as `admit` may at the cap (for a closed connection's slot): a
    /// backlog of fifty is not drained past the deadline.
    #[tokio::test]
    async fn the_backlog_drain_ends_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..50)
            .map(|_| std::net::TcpStream::connect(address).unwrap())
            .collect();
        let mut started = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while from_backlog(&listener, deadline).is_some() {
            started += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            (1..50).contains(&started),
            "started {started} of a backlog of 50 (deadline 300 ms, 100 ms each)"
        );
        // With time to spare, the whole backlog is taken.
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        while from_backlog(&listener, far).is_some() {
            started += 1;
        }
        assert_eq!(started, 50);
        drop(clients);
    }

    #[test]
    fn every_bad_variable_of_the_reloads_and_the_serve_loop_is_reported_at_once() {
        let errors = settings(
            |name| match name {
                "EAC_REFRESH_COOLDOWN_MS" => Some("1s".into()),
                "EAC_WATCH_DEBOUNCE_MS" => Some("50".into()),
                "EAC_MAX_CONNECTIONS" => Some("0".into()),
                "EAC_HEADER_READ_TIMEOUT_MS" => Some("30s".into()),
                "EAC_SHUTDOWN_GRACE_MS" => Some("-1".into()),
                _ => None,
            },
            4096,
        )
        .unwrap_err();
        insta::assert_snapshot!(errors, @r"
        configuration rejected, 4 errors:
          - env var `EAC_REFRESH_COOLDOWN_MS`: got `1s`, expected a whole number of milliseconds, at most 86400000 (a day)
          - env var `EAC_MAX_CONNECTIONS`: EAC_MAX_CONNECTIONS=0 would refuse every connection: give at least 1, or unset it for the default (half the descriptor limit)
          - env var `EAC_HEADER_READ_TIMEOUT_MS`: got `30s`, expected a whole number of milliseconds, at most 86400000 (a day)
          - env var `EAC_SHUTDOWN_GRACE_MS`: got `-1`, expected a whole number of milliseconds, at most 86400000 (a day)
        ");
    }

    #[test]
    fn the_serve_settings_default_and_cap_connections_below_the_descriptors() {
        let (reload, serve) = settings(
            |name| match name {
                "EAC_MAX_CONNECTIONS" => Some("100000".into()),
                "EAC_SHUTDOWN_GRACE_MS" => Some(" 500 ".into()),
                "EAC_HEADER_READ_TIMEOUT_MS" => Some(String::new()),
                _ => None,
            },
            4096,
        )
        .unwrap();
        assert_eq!(reload, ReloadConfig::default());
        assert_eq!(serve.max_connections, (4096 - 256) / 2);
        assert_eq!(serve.header_read_timeout, Duration::from_secs(30));
        assert_eq!(serve.grace, Duration::from_millis(500));
    }
}
