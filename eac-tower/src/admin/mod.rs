//! The admin service: status, history, refresh, rollback, preview and an event stream,
//! mounted under a prefix (by default `/_internal/eac`).
//!
//! | route | token | answers |
//! |---|---|---|
//! | `GET status` | no | version, hash, the last reload's outcome, time and errors |
//! | `GET history` | no | the kept versions (hash, origin, time, changed sections) and rejections |
//! | `GET events` | no | server-sent events: each publish, unchanged reload and rejection |
//! | `POST refresh[?force=1]` | yes | reloads now: outcome, version, hash, duration |
//! | `POST rollback?to=N` | yes | republishes version N as a new version |
//! | `POST preview` | yes | JSON overlay body → validation result and classified diff; publishes nothing |
//!
//! The token comes from `EAC_REFRESH_ENDPOINT_TOKEN` ([`AdminConfig::from_env`]) and is
//! sent in the `x-eac-refresh-token` header. It is compared in constant time over SHA-256
//! hashes of both sides, so neither its content nor its length leaks. **Without a
//! configured token the mutating routes are off** (403). A wrong or missing token gets
//! 401; too many mutating requests with the right token get 429; a body over the limit
//! gets 413. A refresh answers 200 (published or unchanged), 422 (rejected), 429
//! (throttled), 504 (over the build timeout); a rollback 404 for a version not kept. Each refresh
//! and rollback writes an audit line (target `eac::audit`: who, what, outcome — never the
//! token). Every answer redacts secrets.
//!
//! The admin router is separate from the public one: it is exposed only where you nest it.
//!
//! ```
//! use axum::Router;
//! use eac_accessor::{EaCAccessor, source::{Format, Memory}};
//! use eac_tower::admin::{self, AdminConfig};
//!
//! let accessor = EaCAccessor::builder()
//!     .source(Memory::new("m", Format::Toml, "[greeting]\nmessage = \"hi\"\n"))
//!     .build()?;
//! let app: Router = Router::new()
//!     .nest(admin::DEFAULT_PREFIX, admin::router(accessor, AdminConfig::from_env()));
//! # Ok::<(), eac_accessor::Errors>(())
//! ```

mod auth;
mod routes;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use eac_accessor::{EaCAccessor, Errors, Origin, Outcome};

use auth::{RateLimit, Token};

/// Where [`router`] is usually nested.
pub const DEFAULT_PREFIX: &str = "/_internal/eac";

/// The header that carries the admin token.
pub const TOKEN_HEADER: &str = "x-eac-refresh-token";

/// The environment variable that holds the admin token.
pub const TOKEN_ENV: &str = "EAC_REFRESH_ENDPOINT_TOKEN";

/// What a refresh runs: given `force`, a future of the reload's result.
pub type RefreshFn = Arc<
    dyn Fn(bool) -> Pin<Box<dyn Future<Output = Result<Outcome, Errors>> + Send>> + Send + Sync,
>;

/// Settings of the admin service.
#[derive(Clone)]
pub struct AdminConfig {
    token: Option<Token>,
    body_limit: usize,
    burst: u32,
    refill: Duration,
    refresh: Option<RefreshFn>,
}

impl AdminConfig {
    /// No token: the mutating routes are off. 64 KiB bodies, 10 mutating requests at
    /// once then one per second.
    pub fn new() -> AdminConfig {
        AdminConfig {
            token: None,
            body_limit: 64 * 1024,
            burst: 10,
            refill: Duration::from_secs(1),
            refresh: None,
        }
    }

    /// [`new`](AdminConfig::new), with the token from `EAC_REFRESH_ENDPOINT_TOKEN` if set
    /// and not empty.
    pub fn from_env() -> AdminConfig {
        let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
        AdminConfig::new().token(token)
    }

    /// Sets (or, with `None`, clears) the token that unlocks the mutating routes.
    pub fn token(mut self, token: Option<impl AsRef<str>>) -> AdminConfig {
        self.token = token.map(|t| Token::new(t.as_ref()));
        self
    }

    /// The largest request body accepted, in bytes.
    pub fn body_limit(mut self, bytes: usize) -> AdminConfig {
        self.body_limit = bytes;
        self
    }

    /// `burst` mutating requests at once, then one per `refill`.
    pub fn rate_limit(mut self, burst: u32, refill: Duration) -> AdminConfig {
        self.burst = burst;
        self.refill = refill;
        self
    }

    /// What `POST refresh` runs (a reload coordinator's refresh, say). By default, a
    /// reload of the accessor on a blocking thread.
    pub fn refresh_with(mut self, refresh: RefreshFn) -> AdminConfig {
        self.refresh = Some(refresh);
        self
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig::new()
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "[set]"))
            .field("body_limit", &self.body_limit)
            .field("burst", &self.burst)
            .field("refill", &self.refill)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct AdminState {
    accessor: EaCAccessor,
    token: Option<Token>,
    limit: Arc<RateLimit>,
    refresh: RefreshFn,
}

/// The admin routes for `accessor`, to nest under a prefix.
pub fn router(accessor: EaCAccessor, config: AdminConfig) -> Router {
    let refresh = config.refresh.unwrap_or_else(|| {
        let accessor = accessor.clone();
        Arc::new(move |_force| {
            let accessor = accessor.clone();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || accessor.reload(Origin::Refresh))
                    .await
                    .unwrap_or_else(|e| {
                        Err(eac_accessor::Error::new(
                            eac_accessor::ErrorKind::Io,
                            format!("the reload task failed: {e}"),
                        )
                        .into())
                    })
            })
        })
    });
    let state = AdminState {
        accessor,
        token: config.token,
        limit: Arc::new(RateLimit::new(config.burst, config.refill)),
        refresh,
    };
    Router::new()
        .route("/status", get(routes::status))
        .route("/history", get(routes::history))
        .route("/events", get(routes::events))
        .route("/refresh", post(routes::refresh))
        .route("/rollback", post(routes::rollback))
        .route("/preview", post(routes::preview))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .with_state(state)
}
