//! The admin's routes, each behind its guard, and the router that serves them.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn_with_state, map_response};
use axum::routing::{get, post};
use eac_accessor::EaCAccessor;

use super::config::AdminConfig;
use super::{auth, dashboard, events, metrics, reply, routes};

/// The admin routes for `accessor`, to nest under a prefix of a router of any state
/// (or to serve on a listener of their own); see the [module docs](super).
///
/// Every read route sits behind the read policy and every mutating route behind the
/// admin token, each checked before the handler runs.
pub fn router<S>(accessor: EaCAccessor, config: AdminConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let (state, body_limit) = config.into_state(accessor);
    let policy = Arc::clone(&state.policy);
    // A read route added here is guarded by the read policy; a mutating one below by
    // the admin token (and must take a rate-limit token itself, after its body is read).
    let reads = Router::new()
        .route("/status", get(routes::status))
        .route("/history", get(routes::history))
        .route("/fleet", get(routes::fleet))
        .route("/events", get(events::events))
        .route("/diff", get(routes::diff))
        .route("/metrics", get(metrics::metrics))
        .route_layer(from_fn_with_state(policy.clone(), auth::require_read));
    let mutations = Router::new()
        .route("/refresh", post(routes::refresh))
        .route("/rollback", post(routes::rollback))
        .route("/preview", post(routes::preview))
        .route("/canary", post(routes::canary))
        .route("/canary/promote", post(routes::canary_promote))
        .route("/canary/abort", post(routes::canary_abort))
        .route("/release/{id}/{action}", post(routes::release_decide))
        .route_layer(from_fn_with_state(policy, auth::require_admin));
    // Every answer of the data routes, refusals included, is kept by no cache: it holds
    // the configuration, or says who may read it. The dashboard's files hold no data:
    // outside both guards, with headers of their own.
    reads
        .merge(mutations)
        .layer(map_response(reply::no_store))
        .merge(dashboard::routes())
        .layer(DefaultBodyLimit::max(body_limit))
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
