//! The admin service: status, history, refresh, rollback, preview and an event stream,
//! mounted under a prefix (by default `/_internal/eac`), closed by default.
//!
//! | route | token | answers |
//! |---|---|---|
//! | `GET status` | read or admin¹ | the served version (hash, origin, time) and the last reload's outcome, time and errors: [fields](#get-status) |
//! | `GET history` | read or admin¹ | the kept versions (hash, origin, time, changed sections) and rejections |
//! | `GET events` | read or admin¹ | server-sent events: each publish, unchanged reload and rejection |
//! | `GET fleet` | read or admin¹ | with an etcd prefix: `{"revision", "members": [{"id", "state", "version", "hash", "applied_revision", "applied_at", "nack"}], "releases"}`, each member `SYNCED`, `NACKED`, `SYNCING` or `STALE` (behind longer than the stale window); 404 without etcd |
//! | `GET diff?from=A[&to=B]` | read or admin¹ | the classified changes between two kept versions, secrets redacted |
//! | `GET metrics` | read or admin¹ | the application's metrics in the Prometheus text format ([`AdminConfig::metrics`]) |
//! | `GET /` (and `dashboard/app.js`, `dashboard/app.css`) | none | the [dashboard](#the-dashboard) page; it holds no data |
//! | `POST refresh[?force=1]` | admin | reloads now: outcome, version, hash, duration |
//! | `POST rollback?to=N` | admin | republishes version N as a new version |
//! | `POST preview` | admin | JSON overlay body → validation result and classified diff; publishes nothing |
//! | `POST release/{id}/promote`, `POST release/{id}/abort` | admin | decides a fleet's gray release by hand: `{"release", "decision", "why"}`; 404 without a fleet or a record of it |
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
//! | `held_back` | the inputs rejected while the rest of a change was published (a bad input blocks only itself): each with `input` (a file, a URL without credentials, `etcd:<key>`), `since` and `errors`; they keep their last accepted content until they change and pass; `[]` when every input is live |
//! | `history_store` | the durable history's state, `null` without one: `path`, `error` (the last write's, while behind), `unsaved` (versions not on disk yet), `failures`, `served_before` (what the store served before, when not this) |
//! | `sources` | each source that fetches in the background (a remote document, an etcd prefix), in merge order: `kind`, `name`, `up`, `serving_cache`, `last_fetch`, `last_success`, `last_result` (`"modified"`, `"not_modified"`, `"error"`, or `"rejected"` when what it fetched was rejected since), `last_error`, `rejection` (why what it holds now was rejected; `[]` once accepted), the counts `modified`, `not_modified`, `errors`, `rejected`, and `details` (an HTTP status, an ETag, an etcd revision…); `[]` when every source is read on demand |
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
//!
//! [`ReloadCoordinator`]: eac_accessor::reload::ReloadCoordinator
//! [`EaCAccessor::status`]: eac_accessor::EaCAccessor::status

mod auth;
mod config;
mod dashboard;
mod events;
mod metrics;
mod reply;
mod router;
mod routes;
mod state;

pub use config::AdminConfig;
pub use metrics::{RenderFn, SECONDS_BUCKETS};
pub use router::{nested, router};
pub use state::RefreshFn;

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
