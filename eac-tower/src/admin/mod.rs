//! The admin service: status, history, refresh, rollback, preview and an event stream,
//! mounted under a prefix (by default `/_internal/eac`), closed by default.
//!
//! | route | token | answers |
//! |---|---|---|
//! | `GET status` | read or admin¹ | the served version (hash, origin, time) and the last reload's outcome, time and errors: [fields](#get-status) |
//! | `GET history` | read or admin¹ | the kept versions (hash, origin, time, changed sections) and rejections |
//! | `GET events` | read or admin¹ | server-sent events: each publish, unchanged reload and rejection |
//! | `GET diff?from=A[&to=B]` | read or admin¹ | the classified changes between two kept versions, secrets redacted |
//! | `GET metrics` | read or admin¹ | the application's metrics in the Prometheus text format ([`AdminConfig::metrics`]) |
//! | `GET /` (and `dashboard/app.js`, `dashboard/app.css`) | none | the [dashboard](#the-dashboard) page; it holds no data |
//! | `POST refresh[?force=1]` | admin | reloads now: outcome, version, hash, duration |
//! | `POST rollback?to=N` | admin | republishes version N as a new version |
//! | `POST preview` | admin | JSON overlay body → validation result and classified diff; publishes nothing |
//!
//! ¹ No token when reads are open ([`AdminConfig::open_reads`]), or on a loopback
//! listener to a request addressed to a loopback address or `localhost`.
//!
//! Refresh and rollback go through the process's [`ReloadCoordinator`]
//! ([`AdminConfig::coordinator`]); an admin given none answers them 501, saying so.
//!
//! # `GET status`
//!
//! A JSON object ([`EaCAccessor::status`], plus the sections). Two things are told
//! apart: the **served version** — what readers see now — and the **last reload** —
//! the last attempt, whatever its outcome. A rejected reload changes the second, never
//! the first: after a rejected file edit, `origin` is `file_change` and `outcome`
//! `rejected`, while `version`, `hash`, `published_at` and `version_origin` still
//! describe the version that is served (published by a poll, say). Times are Unix
//! seconds (with a fraction); durations are milliseconds.
//!
//! The served version:
//!
//! | field | what it holds |
//! |---|---|
//! | `version` | the version readers see (the number in the `x-eac-version` header) |
//! | `hash` | its content hash, as `history` shows it |
//! | `published_at` | when it was published |
//! | `version_origin` | what published it: `{"kind": "startup"}`, `"refresh"`, `"file_change"` (with `path`), `"signal"` (`name`), `"poll"` (`url`, credentials stripped), `"etcd"` (`keys`, `revision`), `"rollback"` / `"auto_rollback"` (`from`: the version republished), `"other"` (`reason`) |
//! | `sections` | the paths of the registered sections |
//!
//! The last reload (DESIGN's contract: these stay the last attempt's):
//!
//! | field | what it holds |
//! |---|---|
//! | `outcome` | `"published"`, `"unchanged"` or `"rejected"` |
//! | `time` | when it finished |
//! | `origin` | what caused it (same shape as `version_origin`); not the served version's origin when it was rejected or found nothing new |
//! | `errors` | every problem when rejected, else `[]`: each with `kind`, `key` (dotted), `pointer` (JSON pointer), `source` (the file, variable or URL) and `message`, a secret's value never shown |
//! | `last_reload` | the same as one object: `at`, `origin`, `outcome`, `version` (current after it), `duration_ms`, `errors`; `null` only before any reload |
//! | `last_rejection` | the most recent rejected reload, same shape, kept after later successes; `null` if none |
//!
//! The rest:
//!
//! | field | what it holds |
//! |---|---|
//! | `pending` | manual reload mode: a valid change found but not published — `at`, `origin` (what found it) and `diff` (`changes`, each classified, secrets redacted); `null` otherwise |
//! | `differs_from_sources` | `true` when the served version differs from the sources on purpose: after a rollback, a start on the last good version, or with a `pending` change. A rejected reload leaves it as it was: a rejected edit sitting in a file does not make it `true` (the file holds the edit, the served version is the last good one) — that shows as `outcome: "rejected"` and in `last_rejection`, until the next valid edit is published |
//! | `restart_needed` | the fields read only at start (`#[eac(restart)]`) whose published value differs from the one the process started on: a restart is needed to apply them (the dashboard says so) |
//! | `history_store` | the durable history's state, `null` without one: `path`, `error` (the last write's, while behind), `unsaved` (versions not on disk yet), `failures`, `served_before` (what the store served before, when not this) |
//! | `sources` | each source that fetches in the background (a remote document, an etcd prefix), in merge order: `kind`, `name`, `up`, `serving_cache`, `last_fetch`, `last_success`, `last_result` (`"modified"`, `"not_modified"`, `"error"`), `last_error`, the counts `modified`, `not_modified`, `errors`, and `details` (an HTTP status, an ETag, an etcd revision…); `[]` when every source is read on demand |
//! | `resolvers` | each resolver's current value: `name`, `reads` (section paths), `built_at_version`, `built_at`, `build_ms`, `replaced_alive` (replaced values still held or draining) |
//!
//! # The dashboard
//!
//! `GET <prefix>/` is a page for operators: the running version, hash, origin and the
//! last outcome with its errors, the history, a diff between any two kept versions, a
//! pending change and the history store's state, and a live event log. With the admin
//! token typed in (kept in the tab's `sessionStorage` only) it refreshes, previews a
//! pasted overlay and rolls back, each after showing the diff. The page, its script and
//! its stylesheet are embedded in the binary, served with `Content-Security-Policy:
//! default-src 'self'`, and load without a token; every data request carries the token
//! typed into the page. Mount the admin with [`nested`] to serve the page at both
//! `<prefix>` and `<prefix>/` (a router [`nest`](axum::Router::nest)ed by hand answers
//! only the former).
//!
//! # Who may call what
//!
//! - The **admin token** ([`AdminConfig::token`], `EAC_REFRESH_ENDPOINT_TOKEN`) unlocks
//!   everything. **Without one the mutating routes are off**: they answer 403 to
//!   everyone (no token can open them), and the message says to set it.
//! - The **read-only token** ([`AdminConfig::read_token`], `EAC_ADMIN_READ_TOKEN`) unlocks
//!   the read routes; a mutating route refuses it with 403.
//! - **Reads are closed by default**: every read route needs one of the two tokens, and
//!   answers 401 without it (403 when the server has no token at all) — before anything
//!   is computed. The operator opens them to everyone who reaches the admin with
//!   [`AdminConfig::open_reads`] or `EAC_ADMIN_OPEN_READS=1` (logged as a warning).
//! - **On a loopback listener, reads are open to this machine**
//!   ([`AdminConfig::from_env_for`] decides this from the address the listener is bound
//!   to, never from the peer's: behind a local reverse proxy every peer looks local):
//!   without a token, a read answers only a request addressed to a loopback address or
//!   `localhost` (its `Host`, or its URI's authority as HTTP/2 sends it; with or without
//!   the port). Any other name gets 403 saying how to read on purpose: a web page
//!   elsewhere whose name is rebound to 127.0.0.1 (DNS rebinding) reaches the listener,
//!   but its requests carry that name. A request that names no host is refused too
//!   (HTTP/1.1 requires `Host`; every browser and `curl` send it). A request with a token
//!   is not asked for its host.
//!
//! A token is sent in the `x-eac-refresh-token` header or as `Authorization: Bearer
//! <token>`; a 401 says which token to send and how, and carries `WWW-Authenticate`.
//! Tokens are compared in constant time over SHA-256 hashes of both sides, so neither
//! their content nor their length leaks, and no answer or log line ever holds one. Every
//! answer of the data routes (refusals and the event stream included) carries
//! `Cache-Control: no-store`, so that no cache keeps the configuration.
//!
//! # Limits
//!
//! - **Rate limit**: 10 mutating calls at once, then 1 a second, one budget shared by
//!   refresh, rollback and preview ([`AdminConfig::rate_limit`]); past it, 429 with
//!   `Retry-After` (whole seconds until the next call is allowed). The token is checked
//!   first, so callers without it cannot spend the operator's budget. A refresh refused
//!   by the [`ReloadCoordinator`]'s cooldown or backoff is also a 429 with `Retry-After`.
//! - **Body size**: 64 KiB ([`AdminConfig::body_limit`]); past it, 413.
//! - **Event streams**: at most 64 at once ([`AdminConfig::max_streams`],
//!   `EAC_ADMIN_MAX_STREAMS`); past that, 503 with `Retry-After: 5`. A stream's slot is
//!   freed when its connection closes (noticed at the latest at the next keep-alive).
//!   Each stream sends a `: keep-alive` comment after
//!   15 s without an event ([`AdminConfig::keep_alive`]) so that proxies do not cut it,
//!   and ends when the signal given to [`AdminConfig::shutdown_signal`] fires, so that a
//!   graceful shutdown is not held up by open streams.
//!
//! A refresh answers 200 (published or unchanged), 422 (rejected), 429 (throttled), 504
//! (over the build timeout); a rollback 404 for a version not kept; both 501 without a
//! coordinator. Each refresh and rollback writes an audit line (target `eac::audit`: who,
//! what, outcome — never the token). Every answer redacts secrets.
//!
//! # Mounting it
//!
//! The admin router is separate from the application's: it is exposed only where you
//! mount it. Nested under the application, on the application's port:
//!
//! ```
//! use axum::{Router, extract::State, routing::get};
//! use eac_accessor::{EaCAccessor, source::{Format, Memory}};
//! use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
//! use eac_tower::admin::{self, AdminConfig};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     name: &'static str,
//! }
//!
//! # #[derive(serde::Deserialize, schemars::JsonSchema, eac_accessor::EaCSection)]
//! # struct Greeting { message: String }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let accessor = EaCAccessor::builder()
//!     .section::<Greeting>()
//!     .source(Memory::new("m", Format::Toml, "[greeting]\nmessage = \"hi\"\n"))
//!     .build()?;
//! let reloads = ReloadCoordinator::new(accessor.clone(), ReloadConfig::from_env()?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! // Loopback: reads are open to requests for localhost; refresh and rollback go
//! // through the coordinator.
//! let config = AdminConfig::from_env_for(listener.local_addr()?)?.coordinator(&reloads);
//! let app: Router = Router::new()
//!     .route("/", get(|State(state): State<AppState>| async move { state.name }))
//!     .nest(admin::DEFAULT_PREFIX, admin::router(accessor, config))
//!     .with_state(AppState { name: "app" });
//! # use tower::ServiceExt;
//! # let status = http::Request::get("/_internal/eac/status").header("host", "localhost:8080");
//! # let status = status.body(axum::body::Body::empty())?;
//! # assert_eq!(app.oneshot(status).await?.status(), 200);
//! # drop(listener);
//! # Ok(())
//! # }
//! ```
//!
//! Or on a listener of its own, so that the application's port has no admin routes at all:
//!
//! ```no_run
//! use axum::Router;
//! use eac_accessor::{EaCAccessor, source::Dir};
//! use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
//! use eac_tower::admin::{self, AdminConfig};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let accessor = EaCAccessor::builder().source(Dir::new("/etc/app")).build()?;
//! let reloads = ReloadCoordinator::new(accessor.clone(), ReloadConfig::from_env()?);
//! let admin_listener = tokio::net::TcpListener::bind("0.0.0.0:9090").await?;
//! // Not loopback: reads need EAC_ADMIN_READ_TOKEN or EAC_REFRESH_ENDPOINT_TOKEN.
//! let config = AdminConfig::from_env_for(admin_listener.local_addr()?)?.coordinator(&reloads);
//! let admin: Router = Router::new().nest(admin::DEFAULT_PREFIX, admin::router(accessor, config));
//! axum::serve(admin_listener, admin).await?;
//! # Ok(())
//! # }
//! ```
//!
//! **Which to choose.** On a developer's machine, nesting on a loopback listener is the
//! simplest. In Kubernetes, serve the admin on a port of its own that the Service does
//! not expose (declare it as a container port only), so it is reachable from inside
//! the cluster by whoever you let reach the pod, never from the Service's clients; give
//! it `EAC_ADMIN_READ_TOKEN` from a Secret and have Prometheus scrape it with that token
//! (`authorization: { credentials_file: … }` in the scrape config, which sends it as
//! `Authorization: Bearer`). Keep `EAC_REFRESH_ENDPOINT_TOKEN` for the people and jobs
//! that may change the configuration.

mod auth;
mod dashboard;
mod events;
mod metrics;
mod reply;
mod routes;

pub use metrics::{RenderFn, SECONDS_BUCKETS};

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn_with_state, map_response};
use axum::routing::{get, post};
use eac_accessor::reload::ReloadCoordinator;
use eac_accessor::{EaCAccessor, Error, ErrorKind, Errors, Origin, Outcome, SourceName};
use futures_util::FutureExt;
use tokio::sync::Semaphore;

use auth::{Policy, RateLimit, Reads, Token};
use events::{Shutdown, Streams};

/// Where [`router`] is usually nested.
pub const DEFAULT_PREFIX: &str = "/_internal/eac";

/// The header that carries a token (the admin or the read-only one); `Authorization:
/// Bearer` works too.
pub const TOKEN_HEADER: &str = "x-eac-refresh-token";

/// The environment variable that holds the admin token.
pub const TOKEN_ENV: &str = "EAC_REFRESH_ENDPOINT_TOKEN";

/// The environment variable that holds the read-only token.
pub const READ_TOKEN_ENV: &str = "EAC_ADMIN_READ_TOKEN";

/// The environment variable that opens reads (`1`) or closes them (`0`) whatever the
/// listener's address.
pub const OPEN_READS_ENV: &str = "EAC_ADMIN_OPEN_READS";

/// The environment variable that bounds the number of event streams open at once.
pub const MAX_STREAMS_ENV: &str = "EAC_ADMIN_MAX_STREAMS";

/// The largest `EAC_ADMIN_MAX_STREAMS` accepted.
const MAX_STREAMS_LIMIT: usize = 100_000;

/// What a refresh runs: given `force`, a future of the reload's result.
pub type RefreshFn = Arc<
    dyn Fn(bool) -> Pin<Box<dyn Future<Output = Result<Outcome, Errors>> + Send>> + Send + Sync,
>;

/// What `POST refresh` and `POST rollback` go through.
#[derive(Clone)]
enum Refresh {
    /// Nothing: both answer 501, saying to pass the coordinator. The admin never reloads
    /// or rolls back the accessor itself, behind the back of the coordinator that the
    /// process's other triggers go through.
    Off,
    /// The caller's function for a refresh; a rollback still needs a coordinator.
    With(RefreshFn),
    /// A coordinator: its refresh, with origin [`Origin::Refresh`], and its rollback.
    Coordinator(ReloadCoordinator),
}

impl Refresh {
    /// Runs a refresh (the routes answer before, when it is [`Refresh::Off`]).
    async fn run(&self, force: bool) -> Result<Outcome, Errors> {
        match self {
            Refresh::Coordinator(coordinator) => coordinator.refresh(Origin::Refresh, force).await,
            Refresh::With(refresh) => refresh(force).await,
            Refresh::Off => Err(Error::new(ErrorKind::Io, "no refresh is wired").into()),
        }
    }

    /// How long a refresh that is not forced must still wait, when known.
    fn throttled_for(&self) -> Option<Duration> {
        match self {
            Refresh::Coordinator(coordinator) => coordinator.throttled_for(),
            _ => None,
        }
    }
}

/// Settings of the admin service: tokens, read policy and limits.
///
/// ```
/// use std::time::Duration;
/// use eac_tower::admin::AdminConfig;
///
/// let config = AdminConfig::new()
///     .token(Some("admin-token"))
///     .read_token(Some("read-token"))
///     .max_streams(16)
///     .rate_limit(5, Duration::from_secs(2));
/// assert!(!config.reads_are_open());
/// ```
#[derive(Clone)]
pub struct AdminConfig {
    token: Option<Token>,
    read_token: Option<Token>,
    reads: Reads,
    body_limit: usize,
    burst: u32,
    refill: Duration,
    refresh: Refresh,
    max_streams: usize,
    keep_alive: Duration,
    shutdown: Option<Shutdown>,
    metrics: Option<RenderFn>,
}

impl AdminConfig {
    /// Closed: no token (the mutating routes are off), reads need a token, no coordinator
    /// (refresh and rollback answer 501 until [`coordinator`](AdminConfig::coordinator)).
    /// 64 KiB bodies, 10 mutating requests at once then one per second, 64 event streams
    /// with a keep-alive every 15 s.
    pub fn new() -> AdminConfig {
        AdminConfig {
            token: None,
            read_token: None,
            reads: Reads::Closed,
            body_limit: 64 * 1024,
            burst: 10,
            refill: Duration::from_secs(1),
            refresh: Refresh::Off,
            max_streams: 64,
            keep_alive: Duration::from_secs(15),
            shutdown: None,
            metrics: None,
        }
    }

    /// The settings for an admin served on a listener bound to `bound`, from the
    /// environment: reads open when `bound` is a loopback address.
    ///
    /// Reads `EAC_REFRESH_ENDPOINT_TOKEN` (the admin token), `EAC_ADMIN_READ_TOKEN` (the
    /// read-only token; an empty variable counts as unset), `EAC_ADMIN_OPEN_READS` (`1`
    /// opens reads whatever the address, logged as a warning; `0` closes them even on
    /// loopback) and `EAC_ADMIN_MAX_STREAMS`. Pass the address the listener is actually
    /// bound to ([`local_addr`](std::net::TcpListener::local_addr)), not a peer's.
    ///
    /// A variable that is set but malformed is an error naming it; every such variable
    /// is reported.
    pub fn from_env_for(bound: SocketAddr) -> Result<AdminConfig, Errors> {
        AdminConfig::from_vars_for(bound, |name| std::env::var(name).ok())
    }

    /// Like [`from_env_for`](AdminConfig::from_env_for), reading variables through `var`.
    ///
    /// ```
    /// use eac_tower::admin::AdminConfig;
    ///
    /// let vars = |name: &str| (name == "EAC_ADMIN_READ_TOKEN").then(|| "r3ad".to_owned());
    /// assert!(AdminConfig::from_vars_for("127.0.0.1:8080".parse()?, vars)?.reads_are_open());
    /// assert!(!AdminConfig::from_vars_for("0.0.0.0:8080".parse()?, vars)?.reads_are_open());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_vars_for(
        bound: SocketAddr,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<AdminConfig, Errors> {
        let (config, errors) = AdminConfig::read_vars(Some(bound), var);
        match Errors::from_vec(errors) {
            None => Ok(config),
            Some(errors) => Err(errors),
        }
    }

    /// The settings from the environment, for an admin whose listener's address is not
    /// known here: reads closed unless `EAC_ADMIN_OPEN_READS=1`.
    ///
    /// Prefer [`from_env_for`](AdminConfig::from_env_for), which opens reads on loopback
    /// and fails on a malformed variable; here a malformed variable is logged and its
    /// default kept.
    pub fn from_env() -> AdminConfig {
        let (config, errors) = AdminConfig::read_vars(None, |name| std::env::var(name).ok());
        if let Some(errors) = Errors::from_vec(errors) {
            tracing::error!(%errors, "admin settings: malformed variables ignored");
        }
        config
    }

    /// The settings the variables give, a malformed one left at its default, and an
    /// error for each malformed one.
    fn read_vars(
        bound: Option<SocketAddr>,
        var: impl Fn(&str) -> Option<String>,
    ) -> (AdminConfig, Vec<Error>) {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        // Tokens are trimmed and an empty one is none (see `token`).
        let mut errors = Vec::new();
        let mut config = AdminConfig::new()
            .token(set(TOKEN_ENV))
            .read_token(set(READ_TOKEN_ENV));
        let loopback = bound.is_some_and(|b| is_loopback(b.ip()));
        let by_address = if loopback {
            Reads::Loopback
        } else {
            Reads::Closed
        };
        config.reads = match set(OPEN_READS_ENV).as_deref().map(str::trim) {
            None => {
                if let (true, Some(bound)) = (loopback, bound) {
                    tracing::info!(
                        %bound,
                        "admin reads are open to requests for a loopback address or localhost: \
                         the admin listens on loopback"
                    );
                }
                by_address
            }
            Some("1" | "true" | "yes" | "on") => {
                if !loopback {
                    tracing::warn!(
                        bound = ?bound,
                        "admin reads are open to anyone who reaches the admin ({OPEN_READS_ENV}=1)"
                    );
                }
                Reads::Open
            }
            Some("0" | "false" | "no" | "off") => Reads::Closed,
            Some(_) => {
                errors.push(
                    Error::new(ErrorKind::Parse, "expected 1 (open reads) or 0 (closed)")
                        .with_source(SourceName::EnvVar(OPEN_READS_ENV.to_owned())),
                );
                by_address
            }
        };
        if let Some(value) = set(MAX_STREAMS_ENV) {
            match value.trim().parse::<usize>() {
                Ok(n) if n <= MAX_STREAMS_LIMIT => config.max_streams = n,
                _ => errors.push(
                    Error::new(
                        ErrorKind::Parse,
                        format!(
                            "expected a whole number of event streams, at most {MAX_STREAMS_LIMIT}"
                        ),
                    )
                    .with_source(SourceName::EnvVar(MAX_STREAMS_ENV.to_owned())),
                ),
            }
        }
        (config, errors)
    }

    /// Sets (or, with `None`, clears) the admin token, which unlocks every route.
    ///
    /// Surrounding whitespace is ignored (a token read from a file often ends with a
    /// newline, which no header can carry); an empty token counts as none.
    ///
    /// To clear it without naming a type, use [`without_token`](AdminConfig::without_token)
    /// (a bare `token(None)` does not say what `None` holds).
    pub fn token(mut self, token: Option<impl AsRef<str>>) -> AdminConfig {
        self.token = token.and_then(|t| Token::new(t.as_ref()));
        self
    }

    /// Clears the admin token: the mutating routes are off (403 to everyone).
    pub fn without_token(mut self) -> AdminConfig {
        self.token = None;
        self
    }

    /// Sets (or, with `None`, clears) the read-only token, which unlocks the read routes
    /// and which a mutating route refuses with 403. Whitespace is handled as by
    /// [`token`](AdminConfig::token).
    pub fn read_token(mut self, token: Option<impl AsRef<str>>) -> AdminConfig {
        self.read_token = token.and_then(|t| Token::new(t.as_ref()));
        self
    }

    /// Clears the read-only token.
    pub fn without_read_token(mut self) -> AdminConfig {
        self.read_token = None;
        self
    }

    /// Whether the read routes answer every request without a token (by default they
    /// do not), whatever host name it is addressed to.
    ///
    /// Open them only where everyone who can reach the admin may read the whole
    /// configuration history: a port no one else reaches. On a loopback listener prefer
    /// [`from_env_for`](AdminConfig::from_env_for), which opens reads only to requests
    /// addressed to a loopback address or `localhost`, so that a web page elsewhere
    /// cannot read them by rebinding its name to this machine.
    pub fn open_reads(mut self, open: bool) -> AdminConfig {
        self.reads = if open { Reads::Open } else { Reads::Closed };
        self
    }

    /// Whether the read routes answer without a token: to every request, or (on a
    /// loopback listener, by [`from_env_for`](AdminConfig::from_env_for)) to requests
    /// addressed to a loopback address or `localhost`.
    pub fn reads_are_open(&self) -> bool {
        self.reads != Reads::Closed
    }

    /// The largest request body accepted, in bytes.
    pub fn body_limit(mut self, bytes: usize) -> AdminConfig {
        self.body_limit = bytes;
        self
    }

    /// `burst` mutating requests at once, then one per `refill`; the budget is shared by
    /// refresh, rollback and preview.
    pub fn rate_limit(mut self, burst: u32, refill: Duration) -> AdminConfig {
        self.burst = burst;
        self.refill = refill;
        self
    }

    /// The most event streams open at once (0 turns the stream off).
    pub fn max_streams(mut self, streams: usize) -> AdminConfig {
        self.max_streams = streams.min(Semaphore::MAX_PERMITS);
        self
    }

    /// How long an event stream may stay silent before it sends a keep-alive comment
    /// (at least 1 ms).
    pub fn keep_alive(mut self, interval: Duration) -> AdminConfig {
        self.keep_alive = interval.max(Duration::from_millis(1));
        self
    }

    /// Ends every event stream when `signal` completes, so that a graceful shutdown is
    /// not held up by them; streams opened after that end at once.
    ///
    /// Pass the same signal as the server's graceful shutdown (a clone of a
    /// `tokio::sync::watch::Receiver` awaited, for instance).
    pub fn shutdown_signal(
        mut self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> AdminConfig {
        let signal: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(signal);
        self.shutdown = Some(signal.shared());
        self
    }

    /// Makes `POST refresh` and `POST rollback` go through `coordinator` (single flight,
    /// cooldown, backoff, health checks), a refresh with origin [`Origin::Refresh`].
    ///
    /// Without it, both answer 501 saying to pass it (a refresh can also be wired with
    /// [`refresh_with`](AdminConfig::refresh_with)): the admin never reloads or rolls
    /// back the accessor behind the back of the coordinator that the process's other
    /// triggers go through. A refresh the coordinator refuses for now answers 429 with
    /// `Retry-After`. `coordinator` must publish to the accessor given to [`router`].
    pub fn coordinator(mut self, coordinator: &ReloadCoordinator) -> AdminConfig {
        self.refresh = Refresh::Coordinator(coordinator.clone());
        self
    }

    /// Serves `GET metrics` with what `render` returns: the Prometheus text exposition of
    /// the application's recorder.
    ///
    /// eac never installs a recorder: install one (with `metrics-exporter-prometheus`,
    /// default features off, and [`SECONDS_BUCKETS`] for the `_seconds` histograms) and
    /// pass `move || handle.render()`. Without it, `GET metrics` answers 404 saying so.
    /// `render` runs on a blocking thread, once per scrape.
    pub fn metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> AdminConfig {
        self.metrics = Some(Arc::new(render));
        self
    }

    /// What `POST refresh` runs, for a trigger other than a [`ReloadCoordinator`]
    /// (which [`coordinator`](AdminConfig::coordinator) wires in one call, rollback
    /// included). `POST rollback` needs a coordinator all the same.
    pub fn refresh_with(mut self, refresh: RefreshFn) -> AdminConfig {
        self.refresh = Refresh::With(refresh);
        self
    }
}

/// Whether `ip` is a loopback address, IPv4-mapped IPv6 included.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig::new()
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |t: &Option<Token>| t.as_ref().map(|_| "[set]");
        f.debug_struct("AdminConfig")
            .field("token", &set(&self.token))
            .field("read_token", &set(&self.read_token))
            .field(
                "reads",
                &match self.reads {
                    Reads::Closed => "closed",
                    Reads::Loopback => "open to loopback host names",
                    Reads::Open => "open",
                },
            )
            .field("body_limit", &self.body_limit)
            .field("burst", &self.burst)
            .field("refill", &self.refill)
            .field(
                "refresh",
                &match self.refresh {
                    Refresh::Off => "off",
                    Refresh::With(_) => "custom",
                    Refresh::Coordinator(_) => "coordinator",
                },
            )
            .field("max_streams", &self.max_streams)
            .field("keep_alive", &self.keep_alive)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct AdminState {
    accessor: EaCAccessor,
    policy: Arc<Policy>,
    limit: Arc<RateLimit>,
    refresh: Refresh,
    streams: Streams,
    metrics: Option<RenderFn>,
}

/// The admin routes for `accessor`, to nest under a prefix of a router of any state
/// (or to serve on a listener of their own); see the [module docs](self).
///
/// Every read route sits behind the read policy and every mutating route behind the
/// admin token, each checked before the handler runs.
pub fn router<S>(accessor: EaCAccessor, config: AdminConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let policy = Policy {
        admin: config.token,
        read: config.read_token,
        reads: config.reads,
    };
    if policy.reads == Reads::Closed && policy.admin.is_none() && policy.read.is_none() {
        tracing::warn!(
            "admin reads are closed and no token is set: every admin route answers 403 \
             (set {READ_TOKEN_ENV} or {TOKEN_ENV})"
        );
    }
    if policy.admin.is_some() && !matches!(config.refresh, Refresh::Coordinator(_)) {
        tracing::warn!(
            "the admin has no reload coordinator: POST rollback (and POST refresh, unless \
             wired with AdminConfig::refresh_with) answer 501; pass it with \
             AdminConfig::coordinator"
        );
    }
    let state = AdminState {
        refresh: config.refresh,
        accessor,
        policy: Arc::new(policy),
        limit: Arc::new(RateLimit::new(config.burst, config.refill)),
        streams: Streams {
            slots: Arc::new(Semaphore::new(config.max_streams)),
            max: config.max_streams,
            keep_alive: config.keep_alive,
            shutdown: config.shutdown,
        },
        metrics: config.metrics,
    };
    // A read route added here is guarded by the read policy; a mutating one below by
    // the admin token (and must take a rate-limit token itself, after its body is read).
    let reads = Router::new()
        .route("/status", get(routes::status))
        .route("/history", get(routes::history))
        .route("/events", get(events::events))
        .route("/diff", get(routes::diff))
        .route("/metrics", get(metrics::metrics))
        .route_layer(from_fn_with_state(state.clone(), auth::require_read));
    let mutations = Router::new()
        .route("/refresh", post(routes::refresh))
        .route("/rollback", post(routes::rollback))
        .route("/preview", post(routes::preview))
        .route_layer(from_fn_with_state(state.clone(), auth::require_admin));
    // Every answer of the data routes, refusals included, is kept by no cache: it holds
    // the configuration, or says who may read it. The dashboard's files hold no data:
    // outside both guards, with headers of their own.
    reads
        .merge(mutations)
        .layer(map_response(reply::no_store))
        .merge(dashboard::routes())
        .layer(DefaultBodyLimit::max(config.body_limit))
        .with_state(state)
}

/// The admin routes nested under `prefix`, with the dashboard page at both `prefix` and
/// `prefix/`; merge the result into the application's router.
///
/// ```
/// use axum::Router;
/// use eac_accessor::{EaCAccessor, source::{Format, Memory}};
/// use eac_tower::admin::{self, AdminConfig};
///
/// # #[derive(serde::Deserialize, schemars::JsonSchema, eac_accessor::EaCSection)]
/// # struct Greeting { message: String }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let accessor = EaCAccessor::builder()
///     .section::<Greeting>()
///     .source(Memory::new("m", Format::Toml, "[greeting]\nmessage = \"hi\"\n"))
///     .build()?;
/// let app: Router = Router::new().merge(admin::nested(admin::DEFAULT_PREFIX, accessor, AdminConfig::new()));
/// # drop(app);
/// # Ok(())
/// # }
/// ```
///
/// # Panics
///
/// When `prefix` is empty or `/` (merge [`router`] itself instead), as
/// [`Router::nest`](axum::Router::nest) does.
pub fn nested<S>(prefix: &str, accessor: EaCAccessor, config: AdminConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let prefix = prefix.trim_end_matches('/');
    Router::new()
        .nest(prefix, router(accessor, config))
        .route(&format!("{prefix}/"), dashboard::index_at(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bound: &str, vars: &[(&str, &str)]) -> Result<AdminConfig, Errors> {
        AdminConfig::from_vars_for(bound.parse().unwrap(), |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn reads_open_by_the_bound_address() {
        for open in [
            "127.0.0.1:8080",
            "127.3.4.5:1",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(config(open, &[]).unwrap().reads_are_open(), "{open}");
        }
        for closed in [
            "0.0.0.0:8080",
            "[::]:8080",
            "10.0.0.7:8080",
            "[::ffff:10.0.0.7]:80",
        ] {
            assert!(!config(closed, &[]).unwrap().reads_are_open(), "{closed}");
        }
    }

    #[test]
    fn the_operator_opens_or_closes_reads() {
        let open = config("0.0.0.0:8080", &[(OPEN_READS_ENV, "1")]).unwrap();
        assert!(open.reads_are_open());
        let closed = config("127.0.0.1:8080", &[(OPEN_READS_ENV, "0")]).unwrap();
        assert!(!closed.reads_are_open());
        let unset = config("0.0.0.0:8080", &[(OPEN_READS_ENV, "")]).unwrap();
        assert!(!unset.reads_are_open());
    }

    #[test]
    fn tokens_and_streams_come_from_the_environment() {
        let config = config(
            "0.0.0.0:8080",
            &[
                (TOKEN_ENV, "adm"),
                (READ_TOKEN_ENV, "rd"),
                (MAX_STREAMS_ENV, " 3 "),
            ],
        )
        .unwrap();
        assert!(config.token.as_ref().is_some_and(|t| t.matches("adm")));
        assert!(config.read_token.as_ref().is_some_and(|t| t.matches("rd")));
        assert_eq!(config.max_streams, 3);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("adm\"") && !debug.contains("\"rd"),
            "{debug}"
        );
        assert!(debug.contains(r#"read_token: Some("[set]")"#), "{debug}");
    }

    #[test]
    fn every_malformed_variable_is_named() {
        let errors = config(
            "0.0.0.0:8080",
            &[(OPEN_READS_ENV, "maybe"), (MAX_STREAMS_ENV, "lots")],
        )
        .unwrap_err();
        let named: Vec<String> = errors
            .iter()
            .map(|e| e.source().unwrap().to_string())
            .collect();
        assert_eq!(
            named,
            [
                format!("env var `{OPEN_READS_ENV}`"),
                format!("env var `{MAX_STREAMS_ENV}`")
            ]
        );
        let too_many = (MAX_STREAMS_LIMIT + 1).to_string();
        assert!(config("0.0.0.0:8080", &[(MAX_STREAMS_ENV, &too_many)]).is_err());
    }

    #[test]
    fn blank_tokens_are_none_and_whitespace_is_ignored() {
        let config = AdminConfig::new()
            .token(Some("  "))
            .read_token(Some(" rd\n"));
        assert!(config.token.is_none());
        assert!(config.read_token.as_ref().is_some_and(|t| t.matches("rd")));
    }

    #[test]
    fn clearing_the_tokens_needs_no_annotation() {
        let config = AdminConfig::new()
            .token(Some("a"))
            .read_token(Some(String::from("b")))
            .without_token()
            .without_read_token();
        assert!(config.token.is_none() && config.read_token.is_none());
    }
}
