//! What the admin routes share: the accessor, the access policy, the rate limit, what a
//! refresh goes through, the event streams' settings and the metrics page.

use std::sync::Arc;

use axum::extract::FromRef;
use eac_accessor::EaCAccessor;
use tokio::sync::Semaphore;

use super::auth::{Policy, RateLimit, Reads};
use super::config::{AdminConfig, Refresh};
use super::events::Streams;
use super::metrics::RenderFn;
use super::{READ_TOKEN_ENV, TOKEN_ENV};

/// What every admin route shares, built once by [`router`](super::router) and cloned
/// into each request.
#[derive(Clone)]
pub(super) struct AdminState {
    pub(super) accessor: EaCAccessor,
    pub(super) policy: Arc<Policy>,
    pub(super) limit: Arc<RateLimit>,
    pub(super) refresh: Refresh,
    pub(super) streams: Streams,
    pub(super) metrics: Option<RenderFn>,
}

impl AdminState {
    /// The state of an admin for `accessor` under `config`; warns of settings that leave
    /// every route closed or refresh and rollback unwired.
    pub(super) fn new(accessor: EaCAccessor, config: AdminConfig) -> AdminState {
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
        AdminState {
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
        }
    }
}

// The handlers that need one part of the state take only that part.

impl FromRef<AdminState> for EaCAccessor {
    fn from_ref(state: &AdminState) -> Self {
        state.accessor.clone()
    }
}

impl FromRef<AdminState> for Streams {
    fn from_ref(state: &AdminState) -> Self {
        state.streams.clone()
    }
}

impl FromRef<AdminState> for Option<RenderFn> {
    fn from_ref(state: &AdminState) -> Self {
        state.metrics.clone()
    }
}
