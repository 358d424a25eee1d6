//! Health checks after a publish, and the automatic rollback when one fails.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;

use super::lock;
use crate::accessor::EaCAccessor;
use crate::error::{Error, ErrorKind, Errors};
use crate::snapshot::{Origin, Snapshot};

type HealthCheck = Arc<
    dyn Fn(Arc<Snapshot>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// The named checks run against each newly published snapshot.
#[derive(Default)]
pub(super) struct HealthChecks(Mutex<Vec<(String, HealthCheck)>>);

impl HealthChecks {
    pub(super) fn add<F, Fut>(&self, name: String, check: F)
    where
        F: Fn(Arc<Snapshot>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: HealthCheck = Arc::new(move |s| Box::pin(check(s)));
        lock(&self.0).push((name, check));
    }

    /// Runs every check against `snapshot` in turn, each within `window`; the first
    /// that fails, panics or overruns says why.
    pub(super) async fn run(
        &self,
        snapshot: &Arc<Snapshot>,
        window: Duration,
    ) -> Result<(), String> {
        let checks: Vec<_> = lock(&self.0).clone();
        for (name, check) in checks {
            let check = AssertUnwindSafe(check(Arc::clone(snapshot))).catch_unwind();
            match tokio::time::timeout(window, check).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(why))) => return Err(format!("health check `{name}` failed: {why}")),
                Ok(Err(_)) => return Err(format!("health check `{name}` panicked")),
                Err(_) => {
                    return Err(format!(
                        "health check `{name}` did not pass within {} ms",
                        window.as_millis()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Republishes `previous` over version `failed`, whose health check failed for `why`,
/// and records the failure as a rejection (origin `auto-rollback`); returns the error
/// the refresh reports.
pub(super) async fn auto_rollback(
    accessor: &EaCAccessor,
    previous: Arc<Snapshot>,
    failed: u64,
    why: String,
) -> Errors {
    let publisher = Arc::clone(&accessor.publisher);
    let restore = Arc::clone(&previous);
    let rolled = tokio::task::spawn_blocking(move || publisher.restore(&restore, failed)).await;
    let previous = previous.version();
    let message = match &rolled {
        Ok(Ok(outcome)) => format!(
            "{why}; version {failed} was rolled back: version {} republishes version {previous}",
            outcome.version()
        ),
        Ok(Err(errors)) => {
            format!("{why}; rolling back to version {previous} failed too: {errors}")
        }
        Err(e) => format!("{why}; the rollback task failed: {e}"),
    };
    let errors: Errors = Error::new(ErrorKind::HealthCheck, message).into();
    accessor
        .publisher
        .reject(&Origin::AutoRollback { from: previous }, &errors, None);
    errors
}
