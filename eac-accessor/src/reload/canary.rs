//! The guard of a canary: it watches the running canary's figures, and promotes it when
//! its window passed without a breach, or aborts it on a breach (or with too few
//! requests 30 s past the window). The operator's hand (start, promote, abort) goes
//! through here too.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Coordinator, ReloadCoordinator, health};
use crate::canary::{Canary, GRACE, Role, Verdict, compared};
use crate::error::{Error, ErrorKind, Errors};
use crate::publish::Outcome;
use crate::snapshot::Origin;
use crate::sync::lock;

impl ReloadCoordinator {
    /// The canary serving a share of requests, if one runs.
    pub fn canary(&self) -> Option<Arc<Canary>> {
        self.inner.accessor.canary()
    }

    /// Starts a canary of what the sources say with `overlay` merged over them, in any
    /// reload mode (the admin's `POST canary`): judged, promoted or aborted like one a
    /// change started. A canary already running is replaced.
    pub async fn start_canary(&self, overlay: Value) -> Result<Outcome, Errors> {
        let publisher = Arc::clone(&self.inner.accessor.publisher);
        let config = self.inner.config.canary.clone();
        let origin = Origin::Other {
            reason: "canary overlay".into(),
        };
        let result =
            tokio::task::spawn_blocking(move || publisher.canary_with(&overlay, origin, &config))
                .await
                .unwrap_or_else(|e| {
                    Err(Error::new(ErrorKind::Io, format!("the canary task failed: {e}")).into())
                });
        if let Ok(Outcome::Canary { .. }) = &result {
            self.inner.guard_canary();
        }
        result
    }

    /// Promotes the running canary now (an operator's call): it becomes the current
    /// version.
    pub async fn promote_canary(&self) -> Result<Outcome, Errors> {
        let canary = self.canary().ok_or_else(no_canary)?;
        self.inner.promote(&canary, "promoted by hand".into()).await
    }

    /// Aborts the running canary now (an operator's call): nothing is published, and the
    /// same content is not canaried again until a source changes.
    pub async fn abort_canary(&self) -> Result<(), Errors> {
        let canary = self.canary().ok_or_else(no_canary)?;
        self.inner
            .abort(&canary, "canary: aborted by hand".into())
            .await
    }
}

fn no_canary() -> Errors {
    Error::new(ErrorKind::NotFound, "no canary is running").into()
}

impl Coordinator {
    /// Makes sure the running canary, if any, has a guard; one guard per canary.
    pub(super) fn guard_canary(self: &Arc<Self>) {
        let Some(canary) = self.accessor.canary() else {
            return;
        };
        let mut guard = lock(&self.canary_guard);
        if guard
            .as_ref()
            .is_some_and(|(version, task)| *version == canary.version() && !task.is_finished())
        {
            return;
        }
        let coordinator = Arc::clone(self);
        let version = canary.version();
        *guard = Some((
            version,
            tokio::spawn(async move { coordinator.guard(canary).await }),
        ));
    }

    /// Judges `canary` every tick until it is promoted, aborted, or no longer running.
    async fn guard(self: Arc<Self>, canary: Arc<Canary>) {
        let window = canary.config().window;
        let tick = (window / 20).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            let running = self.accessor.canary();
            canary.export();
            if !running.is_some_and(|r| Arc::ptr_eq(&r, &canary)) {
                return;
            }
            let elapsed = canary.elapsed();
            let stable = canary.stats(Role::Stable).figures();
            let ours = canary.stats(Role::Canary).figures();
            match canary.verdict() {
                Verdict::Breach(why) => {
                    let _ = self.abort(&canary, why.to_string()).await;
                    return;
                }
                Verdict::Healthy if elapsed >= window => {
                    let why = format!("the window passed: {}", compared(&stable, &ours));
                    let _ = self.promote(&canary, why).await;
                    return;
                }
                Verdict::TooFew if elapsed >= window + GRACE => {
                    let why = format!(
                        "canary: {} requests by {} s past the window, fewer than the {} needed",
                        ours.requests,
                        GRACE.as_secs(),
                        canary.config().thresholds.min_requests
                    );
                    let _ = self.abort(&canary, why).await;
                    return;
                }
                _ => {}
            }
        }
    }

    /// Promotes `canary`, runs the health checks on it as on any publish, and reads the
    /// sources again so that they are committed as what is served.
    async fn promote(
        self: &Arc<Self>,
        canary: &Arc<Canary>,
        why: String,
    ) -> Result<Outcome, Errors> {
        let publisher = Arc::clone(&self.accessor.publisher);
        let previous = self.accessor.load_full();
        let promoted = Arc::clone(canary);
        let result = tokio::task::spawn_blocking(move || publisher.promote(&promoted, &why))
            .await
            .unwrap_or_else(|e| {
                Err(Error::new(ErrorKind::Io, format!("the promote task failed: {e}")).into())
            })?;
        if let Outcome::Published { snapshot, .. } = &result
            && let Err(why) = self.checks.run(snapshot, self.config.health_window).await
        {
            return Err(
                health::auto_rollback(&self.accessor, previous, snapshot.version(), why).await,
            );
        }
        if canary.from_sources {
            // The sources are read again: what they say (the canary's content) is now
            // what is served, and they are told so.
            let coordinator = ReloadCoordinator {
                inner: Arc::clone(self),
            };
            let origin = canary.snapshot().origin().clone();
            tokio::spawn(async move {
                let _ = coordinator.refresh_when_allowed(origin).await;
            });
        }
        Ok(result)
    }

    async fn abort(self: &Arc<Self>, canary: &Arc<Canary>, why: String) -> Result<(), Errors> {
        let publisher = Arc::clone(&self.accessor.publisher);
        let aborted = Arc::clone(canary);
        tokio::task::spawn_blocking(move || publisher.abort(&aborted, &why))
            .await
            .unwrap_or_else(|e| {
                Err(Error::new(ErrorKind::Io, format!("the abort task failed: {e}")).into())
            })
    }
}
