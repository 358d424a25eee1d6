//! What the admin routes share: the accessor, the access policy, the rate limit, what a
//! refresh goes through, the event streams' settings and the metrics page.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use eac_accessor::reload::ReloadCoordinator;
use eac_accessor::{EaCAccessor, Error, ErrorKind, Errors, Origin, Outcome};

use super::auth::{Policy, RateLimit};
use super::events::Streams;
use super::metrics::RenderFn;

/// What every admin route shares, built once from the [`AdminConfig`](super::AdminConfig)
/// given to [`router`](super::router) and cloned into each request.
#[derive(Clone)]
pub(super) struct AdminState {
    pub(super) accessor: EaCAccessor,
    pub(super) policy: Arc<Policy>,
    pub(super) limit: Arc<RateLimit>,
    pub(super) refresh: Refresh,
    pub(super) streams: Streams,
    pub(super) metrics: Option<RenderFn>,
}

/// What a refresh runs: given `force`, a future of the reload's result.
pub type RefreshFn = Arc<
    dyn Fn(bool) -> Pin<Box<dyn Future<Output = Result<Outcome, Errors>> + Send>> + Send + Sync,
>;

/// What `POST refresh` and `POST rollback` go through.
#[derive(Clone)]
pub(super) enum Refresh {
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
    pub(super) async fn run(&self, force: bool) -> Result<Outcome, Errors> {
        match self {
            Refresh::Coordinator(coordinator) => coordinator.refresh(Origin::Refresh, force).await,
            Refresh::With(refresh) => refresh(force).await,
            Refresh::Off => Err(Error::new(ErrorKind::Io, "no refresh is wired").into()),
        }
    }

    /// How long a refresh that is not forced must still wait, when known.
    pub(super) fn throttled_for(&self) -> Option<Duration> {
        match self {
            Refresh::Coordinator(coordinator) => coordinator.throttled_for(),
            _ => None,
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
