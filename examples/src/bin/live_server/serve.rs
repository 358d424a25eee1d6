//! The one serve loop of `live_server`'s listeners (the application's and the admin's):
//! a header read timeout, a cap on open connections below the descriptor limit, and a
//! graceful shutdown that answers every request already received.
//!
//! Built on hyper's HTTP/1 connection directly rather than `axum::serve`, for three
//! things that one cannot do:
//! - `header_read_timeout` (hyper's, with its timer): a request head not complete
//!   within it is dropped, and since hyper 1.6 the same timeout also closes a
//!   keep-alive connection idle that long between requests;
//! - a cap on connections: past it, a new connection is closed at once, so the
//!   descriptors kept in reserve stay free for config files, the state dir and the watcher;
//! - on shutdown, a connection whose request bytes already sit in the socket is served
//!   (with `Connection: close`) instead of being closed unread, and the connections
//!   still waiting in the listen backlog are accepted and served too.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use futures_util::StreamExt;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Descriptors kept free of connections: config files, the state dir, the watcher, logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Timeouts and limits of the serve loop, from the environment.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    /// A request head must be complete within this (`EAC_HEADER_READ_TIMEOUT_MS`).
    pub(crate) header_read_timeout: Duration,
    /// Open connections at most, across listeners (`EAC_MAX_CONNECTIONS`).
    pub(crate) max_connections: usize,
    /// How long shutdown waits for open requests (`EAC_SHUTDOWN_GRACE_MS`).
    pub(crate) grace: Duration,
}

fn millis(name: &str, default: u64) -> Result<Duration, String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{name}: expected a whole number of milliseconds")),
        _ => Ok(Duration::from_millis(default)),
    }
}

impl ServeConfig {
    /// Raises the soft descriptor limit to the hard one (logging both), then reads the
    /// environment; the connection cap stays below the descriptor limit.
    pub(crate) fn from_env() -> Result<ServeConfig, String> {
        let descriptors = raise_descriptor_limit();
        let room = descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(16);
        let max_connections = match std::env::var("EAC_MAX_CONNECTIONS") {
            Ok(v) if !v.trim().is_empty() => {
                let n: u64 = v
                    .trim()
                    .parse()
                    .map_err(|_| "EAC_MAX_CONNECTIONS: expected a whole number".to_owned())?;
                if n > room {
                    tracing::warn!(
                        requested = n,
                        allowed = room,
                        "EAC_MAX_CONNECTIONS is above the descriptor limit less the reserve; using the latter"
                    );
                }
                n.min(room)
            }
            _ => room,
        };
        Ok(ServeConfig {
            header_read_timeout: millis("EAC_HEADER_READ_TIMEOUT_MS", 30_000)?,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            grace: millis("EAC_SHUTDOWN_GRACE_MS", 10_000)?,
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
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let refused = Arc::new(AtomicU64::new(0));
    let mut loops = JoinSet::new();
    for listener in listeners {
        loops.spawn(accept_loop(
            listener,
            config.clone(),
            Arc::clone(&slots),
            Arc::clone(&refused),
            stop.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
}

async fn accept_loop(
    Listener {
        listener,
        router,
        name,
    }: Listener,
    config: ServeConfig,
    slots: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let conn_stop = stop.clone();
    let start = |connections: &mut JoinSet<()>, tcp: TcpStream, peer: SocketAddr| {
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Over the cap: closed at once, so real requests keep descriptors to work with.
            let n = refused.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    listener = name,
                    max = config.max_connections,
                    refused = n + 1,
                    "connection cap reached; closing new connections"
                );
            }
            return;
        };
        let router = router.clone();
        let stop = conn_stop.clone();
        let timeout = config.header_read_timeout;
        connections.spawn(async move {
            connection(tcp, peer, router, timeout, stop).await;
            drop(slot);
        });
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => start(&mut connections, tcp, peer),
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
    // Connections that completed their handshake before the signal wait in the backlog:
    // accept them too (a plain non-blocking accept, until the backlog is empty).
    if let Ok(backlog) = listener.into_std() {
        while let Ok((tcp, peer)) = backlog.accept() {
            let _ = tcp.set_nonblocking(true);
            if let Ok(tcp) = TcpStream::from_std(tcp) {
                start(&mut connections, tcp, peer);
            }
        }
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(config.grace, drained).await.is_err() {
        tracing::warn!(
            listener = name,
            open = connections.len(),
            "connections still open after the grace period; closing them"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection; on shutdown, finishes what it received, then closes.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // A second handle on the socket, to see whether a request waits unread at shutdown.
    let Ok(std) = tcp.into_std() else { return };
    let probe = std.try_clone();
    let Ok(tcp) = TcpStream::from_std(std) else {
        return;
    };
    let ending = stop.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        let ending = ending.clone();
        async move {
            let response = router
                .oneshot(request.map(Body::new))
                .await
                .unwrap_or_else(|e: Infallible| match e {});
            Ok::<_, Infallible>(finish(response, ending))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopped(&mut stop) => {}
    }
    // Idle with nothing received: close now. A request whose bytes already arrived is
    // read and answered; its response carries `Connection: close`, which ends it.
    let waiting = probe.is_ok_and(|p| matches!(p.peek(&mut [0u8; 1]), Ok(n) if n > 0));
    if !waiting {
        conn.as_mut().graceful_shutdown();
    }
    let _ = conn.await;
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
