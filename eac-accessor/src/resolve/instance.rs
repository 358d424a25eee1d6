//! One built value, and what happens to it once it is replaced: dropped with the last
//! snapshot that holds it, or drained by a hook after the drain window.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use tokio::runtime::Handle;

use super::Drain;
use super::slot::Held;

/// What every value of one resolver shares: its drain hook and window, and how many
/// replaced values are still alive.
pub(crate) struct Shared<R> {
    drain: Option<Drain<R>>,
    window: Duration,
    replaced_alive: AtomicUsize,
}

impl<R> Shared<R> {
    pub(crate) fn new(drain: Option<Drain<R>>, window: Duration) -> Shared<R> {
        Shared {
            drain,
            window,
            replaced_alive: AtomicUsize::new(0),
        }
    }

    pub(crate) fn replaced_alive(&self) -> usize {
        self.replaced_alive.load(Ordering::Relaxed)
    }
}

/// A value's life as snapshots share it: replaced, then drained.
pub(crate) struct Instance<R: Send + 'static> {
    /// The value the slots read, shared with them; always `Some` until dropped, when
    /// the drain hook takes it (the slots, which dropped their share first, are gone).
    value: Option<Arc<R>>,
    shared: Arc<Shared<R>>,
    replaced_at: OnceLock<Instant>,
    /// Where the drain hook runs: the runtime the value was built in.
    runtime: Option<Handle>,
}

impl<R: Send + 'static> Instance<R> {
    pub(crate) fn new(value: Arc<R>, shared: Arc<Shared<R>>) -> Instance<R> {
        Instance {
            value: Some(value),
            shared,
            replaced_at: OnceLock::new(),
            runtime: Handle::try_current().ok(),
        }
    }
}

impl<R: Send + Sync + 'static> Held for Instance<R> {
    fn replaced(&self) {
        if self.replaced_at.set(Instant::now()).is_ok() {
            self.shared.replaced_alive.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<R: Send + 'static> Drop for Instance<R> {
    fn drop(&mut self) {
        let replaced_at = self.replaced_at.get().copied();
        if replaced_at.is_some() {
            self.shared.replaced_alive.fetch_sub(1, Ordering::Relaxed);
        }
        let (Some(hook), Some(value)) = (
            self.shared.drain.clone(),
            self.value.take().and_then(Arc::into_inner),
        ) else {
            return;
        };
        let Some(runtime) = &self.runtime else {
            tracing::warn!(
                "a resolver's value was built with no tokio runtime: dropped without its drain hook"
            );
            return;
        };
        // The window counts from the replacement; a value never published drains now.
        let wait = replaced_at
            .map(|at| (at + self.shared.window).saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        runtime.spawn(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            hook(value).await;
        });
    }
}
