//! The run under way (single flight): starting it, building it within the build
//! timeout, and abandoning it there while its blocking read goes on.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::Shared;

use super::{Coordinator, ReloadCoordinator, ReloadMode, lock};
use crate::error::{Error, ErrorKind, Errors};
use crate::publish::{Outcome, Target};
use crate::snapshot::Origin;

pub(super) type RunFuture = Shared<Pin<Box<dyn Future<Output = Result<Outcome, Errors>> + Send>>>;

/// The run under way: its number, whether it skips throttling, whether it has begun
/// reading its sources, and its shared result.
pub(super) struct Flight {
    generation: u64,
    pub(super) forced: bool,
    pub(super) reading: Arc<AtomicBool>,
    pub(super) run: RunFuture,
}

/// Empties the flight slot when its run ends, even by a panic.
struct ClearFlight {
    inner: Arc<Coordinator>,
    generation: u64,
}

impl Drop for ClearFlight {
    fn drop(&mut self) {
        let mut inflight = lock(&self.inner.inflight);
        if inflight
            .as_ref()
            .is_some_and(|f| f.generation == self.generation)
        {
            *inflight = None;
        }
    }
}

/// A run abandoned at the build timeout, while its blocking read goes on.
#[derive(Default)]
pub(super) struct Abandoned {
    /// Whether that read is still going on.
    pub(super) reading: bool,
    /// The trigger refused meanwhile, run once the read returns.
    retry: Option<Origin>,
    /// The task that waits for the read and then runs `retry`.
    pub(super) reaper: Option<tokio::task::JoinHandle<()>>,
}

impl ReloadCoordinator {
    /// Starts a run for `origin` on its own task; its flight leaves the slot when it ends.
    pub(super) fn start(&self, origin: Origin, force: bool) -> Flight {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let inner = Arc::clone(&self.inner);
        let reading = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&reading);
        let task = tokio::spawn(async move {
            let _clear = ClearFlight {
                inner: Arc::clone(&inner),
                generation,
            };
            inner.run(origin, force, flag).await
        });
        let run: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            task.await.unwrap_or_else(|e| {
                Err(Error::new(ErrorKind::Io, format!("the reload task failed: {e}")).into())
            })
        });
        Flight {
            generation,
            forced: force,
            reading,
            run: run.shared(),
        }
    }
}

impl Coordinator {
    /// Runs the pipeline on a blocking thread, within the build timeout.
    pub(super) async fn build(
        self: &Arc<Self>,
        origin: Origin,
        reading: Arc<AtomicBool>,
    ) -> Result<Outcome, Errors> {
        // A run abandoned earlier that is still reading its sources holds the writer lock:
        // queueing more threads behind it would only pile them up. The trigger is kept
        // and run by the reaper as soon as that read returns.
        {
            let mut abandoned = lock(&self.abandoned);
            if abandoned.reading {
                abandoned.retry = Some(origin);
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "a reload abandoned at the build timeout is still reading its sources; \
                     this reload runs as soon as that read returns",
                )
                .into());
            }
        }
        // Decided under the writer lock: either the run commits, or it is abandoned.
        let decision = Arc::new(Mutex::new(Decision::Open));
        let publisher = Arc::clone(&self.accessor.publisher);
        let commit = Arc::clone(&decision);
        let closed = Arc::clone(&self.closed);
        // In canary mode a new valid candidate becomes the canary, not the current version.
        let target = match self.config.mode {
            ReloadMode::Canary => Target::Canary {
                config: self.config.canary.clone(),
                from_sources: true,
            },
            _ => Target::Current,
        };
        let mut task = tokio::task::spawn_blocking(move || {
            reading.store(true, Ordering::SeqCst);
            publisher.reload_to(
                origin,
                &|| {
                    let mut d = lock(&commit);
                    if *d == Decision::Abandoned || closed.load(Ordering::SeqCst) {
                        false
                    } else {
                        *d = Decision::Committed;
                        true
                    }
                },
                &target,
            )
        });
        let joined = match tokio::time::timeout(self.config.build_timeout, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                let committed = {
                    let mut d = lock(&decision);
                    if *d == Decision::Open {
                        *d = Decision::Abandoned;
                    }
                    *d == Decision::Committed
                };
                if !committed {
                    tracing::warn!(timeout = ?self.config.build_timeout, "reload abandoned: over the build timeout");
                    self.reap(task);
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "the reload took longer than the build timeout of {} ms; nothing was published",
                            self.config.build_timeout.as_millis()
                        ),
                    )
                    .into());
                }
                // Too late to abandon: it has been stored, so report what it did.
                task.await
            }
        };
        joined.unwrap_or_else(|e| {
            Err(Error::new(ErrorKind::Io, format!("the reload task failed: {e}")).into())
        })
    }

    /// Waits for an abandoned run's blocking task to end, then runs the trigger that
    /// was refused meanwhile, if any: no trigger is lost to a slow source.
    fn reap(self: &Arc<Self>, task: tokio::task::JoinHandle<Result<Outcome, Errors>>) {
        let inner = Arc::clone(self);
        let mut abandoned = lock(&self.abandoned);
        abandoned.reading = true;
        abandoned.reaper = Some(tokio::spawn(async move {
            let _ = task.await;
            let retry = {
                let mut abandoned = lock(&inner.abandoned);
                abandoned.reading = false;
                abandoned.reaper = None;
                abandoned.retry.take()
            };
            if let Some(origin) = retry {
                let coordinator = ReloadCoordinator { inner };
                if let Err(errors) = coordinator.refresh_when_allowed(origin).await {
                    tracing::warn!(%errors, "the reload held back by an abandoned one failed");
                }
            }
        }));
    }
}

/// What became of a run past its build timeout, decided under the writer lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Open,
    Committed,
    Abandoned,
}
