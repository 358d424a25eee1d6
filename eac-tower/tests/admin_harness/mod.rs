//! A real admin server on loopback for the admin tests, and a client that checks that
//! no answer ever holds a secret or a token.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a part of it"
)]

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::Dir;
use eac_accessor::{EaCAccessor, EaCSection};
use eac_tower::admin::{self, AdminConfig};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::sync::watch;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "only validated, never read")]
struct Limits {
    #[schemars(range(min = 1, max = 16_777_216))]
    max_body_bytes: u64,
}
impl EaCSection for Limits {
    const PATH: &'static str = "limits";
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[expect(dead_code, reason = "only validated, never read")]
struct Upstream {
    api_key: String,
}
impl EaCSection for Upstream {
    const PATH: &'static str = "upstream";
    fn secret_paths() -> Vec<String> {
        vec!["api_key".into()]
    }
}

/// A secret in the configuration: never in an answer.
pub const SECRET: &str = "adm1n-s3cr3t-value";
/// The admin token.
pub const TOKEN: &str = "t0ken-for-tests";
/// The read-only token.
pub const READ_TOKEN: &str = "r3ad-t0ken-for-tests";

/// The admin token set, reads and mutations behind it.
pub fn admin_token() -> AdminConfig {
    AdminConfig::new().token(Some(TOKEN))
}

/// The admin token and the read-only token set.
pub fn both_tokens() -> AdminConfig {
    admin_token().read_token(Some(READ_TOKEN))
}

pub fn app_toml(max: &str, key: &str) -> String {
    format!("[limits]\nmax_body_bytes = {max}\n[upstream]\napi_key = {key}\n")
}

/// How a request carries a token.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    /// In `x-eac-refresh-token`.
    Header(&'a str),
    /// As `Authorization: Bearer`.
    Bearer(&'a str),
}

impl Auth<'_> {
    /// `request` with the token in its place.
    fn carried_by(self, request: http::request::Builder) -> http::request::Builder {
        match self {
            Auth::None => request,
            Auth::Header(token) => request.header(admin::TOKEN_HEADER, token),
            Auth::Bearer(token) => request.header("authorization", format!("Bearer {token}")),
        }
    }
}

impl<'a> From<Option<&'a str>> for Auth<'a> {
    fn from(token: Option<&'a str>) -> Self {
        token.map_or(Auth::None, Auth::Header)
    }
}

/// What the server is being built with: the address it is bound to, the accessor, its
/// reload coordinator, and a signal that fires when the test stops it.
pub struct Setup {
    pub bound: SocketAddr,
    pub accessor: EaCAccessor,
    /// The coordinator for `accessor`, without cooldown or backoff (so that the tests'
    /// refreshes in a row all run); shut down when the server stops.
    pub reloads: ReloadCoordinator,
    stopping: watch::Receiver<bool>,
}

impl Setup {
    /// Completes when the server is told to stop (for `AdminConfig::shutdown_signal`).
    pub fn until_stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    }
}

/// One answer, already checked for leaks.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::String(self.text.clone()))
    }

    /// The `Retry-After` header as whole seconds.
    pub fn retry_after(&self) -> u64 {
        self.headers
            .get("retry-after")
            .unwrap_or_else(|| panic!("no Retry-After on {}: {}", self.status, self.text))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// A running admin server; stopped by [`Server::stop`].
pub struct Server {
    /// Where to reach it (loopback, even when bound to an unspecified address).
    pub address: SocketAddr,
    pub dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
    reloads: ReloadCoordinator,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// The admin alone under [`admin::DEFAULT_PREFIX`], on `127.0.0.1`, refreshing and
    /// rolling back through [`Setup::reloads`], its event streams ended when the server
    /// stops.
    pub async fn start(config: AdminConfig) -> Server {
        Server::start_configured("127.0.0.1:0", move |_| config).await
    }

    /// The same on `bind`, with the config `config` makes for the address bound.
    pub async fn start_configured(
        bind: &str,
        config: impl FnOnce(SocketAddr) -> AdminConfig,
    ) -> Server {
        Server::start_on(bind, move |setup| {
            let config = config(setup.bound)
                .coordinator(&setup.reloads)
                .shutdown_signal(setup.until_stopped());
            Router::new().nest(
                admin::DEFAULT_PREFIX,
                admin::router(setup.accessor.clone(), config),
            )
        })
        .await
    }

    /// Binds `bind`, then serves what `app` builds for that address.
    pub async fn start_on(bind: &str, app: impl FnOnce(&Setup) -> Router) -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.toml"),
            app_toml("1024", &format!("\"{SECRET}\"")),
        )
        .unwrap();
        let accessor = EaCAccessor::builder()
            .section::<Limits>()
            .section::<Upstream>()
            .source(Dir::new(dir.path()))
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let bound = listener.local_addr().unwrap();
        let (stop, stopping) = watch::channel(false);
        let mut timings = ReloadConfig::default();
        timings.cooldown = Duration::ZERO;
        timings.backoff = Duration::ZERO;
        timings.backoff_max = Duration::ZERO;
        let reloads = ReloadCoordinator::new(accessor.clone(), timings);
        let setup = Setup {
            bound,
            accessor,
            reloads,
            stopping,
        };
        let app = app(&setup);
        let stopped = setup.until_stopped();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped)
            .await
            .unwrap();
        });
        let address = if bound.ip().is_unspecified() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, bound.port()))
        } else {
            bound
        };
        Server {
            address,
            dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
            reloads: setup.reloads,
            stop,
            task,
        }
    }

    pub fn write(&self, text: &str) {
        std::fs::write(self.dir.path().join("app.toml"), text).unwrap();
    }

    fn request(
        &self,
        method: &str,
        full_path: &str,
        auth: Auth<'_>,
        body: &str,
    ) -> hyper::Request<Full<Bytes>> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{full_path}", self.address));
        auth.carried_by(request)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    }

    /// Sends a request to an admin route, `path` being under the prefix. An event
    /// stream's body is not read: it is dropped, which closes the stream.
    pub async fn send<'a>(
        &self,
        method: &str,
        path: &str,
        auth: impl Into<Auth<'a>>,
        body: &str,
    ) -> Reply {
        let full_path = format!("{}{path}", admin::DEFAULT_PREFIX);
        self.send_to(method, &full_path, auth.into(), body).await
    }

    /// Sends `request` exactly as built, on a connection of its own: its target as given
    /// (an absolute URI goes out in absolute form) and no `Host` header unless it has one.
    /// An event stream's body is not read.
    pub async fn send_exact(&self, request: hyper::Request<Full<Bytes>>) -> Reply {
        let stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let shown = format!("{} {}", request.method(), request.uri());
        let response = sender.send_request(request).await.unwrap();
        let reply = Server::reply(response).await;
        drop(sender);
        let _ = connection.await;
        assert_no_leak(&format!("{shown}: {reply:?}"));
        reply
    }

    /// The answer read whole, or only its head when it is an event stream.
    async fn reply(response: hyper::Response<Incoming>) -> Reply {
        let (parts, body) = response.into_parts();
        let streaming = parts
            .headers
            .get("content-type")
            .is_some_and(|t| t == "text/event-stream");
        let text = if streaming {
            String::new()
        } else {
            let bytes = body.collect().await.unwrap().to_bytes();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        Reply {
            status: parts.status,
            headers: parts.headers,
            text,
        }
    }

    /// Sends a request to any route of the server.
    pub async fn send_to(
        &self,
        method: &str,
        full_path: &str,
        auth: Auth<'_>,
        body: &str,
    ) -> Reply {
        let request = self.request(method, full_path, auth, body);
        let response = self.client.request(request).await.unwrap();
        let reply = Server::reply(response).await;
        assert_no_leak(&format!("{full_path}: {reply:?}"));
        reply
    }

    /// Status and body as JSON (a string when it is not JSON).
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let reply = self.send(method, path, token, body).await;
        (reply.status.as_u16(), reply.json())
    }

    /// Opens `GET events`: its status, and its body when it is a stream.
    pub async fn open_stream(&self, auth: Auth<'_>) -> (Reply, Option<Stream>) {
        let path = format!("{}/events", admin::DEFAULT_PREFIX);
        let request = self.request("GET", &path, auth, "");
        let response = self.client.request(request).await.unwrap();
        if response.status() != StatusCode::OK {
            let reply = Server::reply(response).await;
            assert_no_leak(&format!("{reply:?}"));
            return (reply, None);
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let (parts, body) = response.into_parts();
        let reply = Reply {
            status: parts.status,
            headers: parts.headers,
            text: String::new(),
        };
        let stream = Stream {
            body,
            seen: String::new(),
        };
        (reply, Some(stream))
    }

    /// Tells the server to stop (ending its event streams) and waits until it has.
    pub async fn stop(self) {
        self.reloads.shutdown().await;
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap();
    }
}

/// An open event stream, read as text.
#[derive(Debug)]
pub struct Stream {
    body: Incoming,
    /// Everything read so far.
    pub seen: String,
}

impl Stream {
    /// Reads until what was read contains `needle`, for at most 10 s.
    pub async fn read_until(&mut self, needle: &str) {
        let read = async {
            while !self.seen.contains(needle) {
                let frame = self
                    .body
                    .frame()
                    .await
                    .expect("the stream ended early")
                    .unwrap();
                if let Some(data) = frame.data_ref() {
                    self.seen.push_str(std::str::from_utf8(data).unwrap());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 10 s; read {:?}", self.seen));
        assert_no_leak(&self.seen);
    }

    /// Reads to the end, for at most 10 s; panics on a broken stream.
    pub async fn read_to_end(&mut self) {
        let read = async {
            while let Some(frame) = self.body.frame().await {
                if let Some(data) = frame.expect("the stream ends cleanly").data_ref() {
                    self.seen.push_str(std::str::from_utf8(data).unwrap());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the stream ends within 10 s");
        assert_no_leak(&self.seen);
    }
}

/// What the `tracing` subscriber [`capture_logs`] set writes, kept in a file.
pub struct Logs {
    file: tempfile::NamedTempFile,
    _default: tracing::subscriber::DefaultGuard,
}

impl Logs {
    /// Every line written so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(self.file.path()).unwrap()
    }
}

/// Sets, on this thread until the [`Logs`] it returns drops, a subscriber that writes
/// every event down to TRACE to a file.
pub fn capture_logs() -> Logs {
    let file = tempfile::NamedTempFile::new().unwrap();
    let writer = std::sync::Arc::new(file.reopen().unwrap());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(writer)
        .finish();
    Logs {
        file,
        _default: tracing::subscriber::set_default(subscriber),
    }
}

/// No answer holds the configuration's secret or either token.
pub fn assert_no_leak(text: &str) {
    for value in [SECRET, TOKEN, READ_TOKEN] {
        assert!(!text.contains(value), "leaked {value:?}: {text}");
    }
}

/// The version numbers an answer of `GET history` lists, newest first.
pub fn listed_versions(history: &Value) -> Vec<u64> {
    let listed = history["versions"].as_array().into_iter().flatten();
    listed
        .filter_map(|entry| entry["version"].as_u64())
        .collect()
}

/// Replaces what changes from run to run (times, hashes, paths) for snapshots.
pub fn stable(mut v: Value, dir: &std::path::Path) -> Value {
    fn walk(v: &mut Value, dir: &str) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    match k.as_str() {
                        "time" | "at" | "published_at" | "duration_ms" if !v.is_null() => {
                            *v = Value::from("[time]")
                        }
                        "hash" => *v = Value::from("[hash]"),
                        _ => walk(v, dir),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, dir)),
            Value::String(s) => *s = s.replace(dir, "[dir]"),
            _ => {}
        }
    }
    walk(&mut v, &dir.display().to_string());
    v
}

/// A request for [`Server::send_exact`]: `target` as given (a path, or an absolute URI),
/// `host` as the only `Host` header (none with `None`), and `auth`.
pub fn exact_request(
    method: &str,
    target: &str,
    host: Option<&str>,
    auth: Auth<'_>,
) -> hyper::Request<Full<Bytes>> {
    let request = hyper::Request::builder().method(method).uri(target);
    let request = match host {
        Some(host) => request.header("host", host),
        None => request,
    };
    auth.carried_by(request)
        .body(Full::new(Bytes::new()))
        .unwrap()
}
