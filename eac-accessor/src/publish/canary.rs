//! The write side of a canary: where a valid candidate goes instead of the current
//! version, and its two ends — promoted (stored as the current version) or aborted
//! (recorded as a rejection; the same content is not canaried again until the sources
//! change).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use arc_swap::ArcSwapOption;

use super::Publisher;
use super::scope::{into_errors, scope};
use crate::canary::{Canary, CanaryConfig, aborted};
use crate::error::SourceName;
use crate::error::{Error, ErrorKind, Errors};
use crate::hash::ContentHash;
use crate::snapshot::Origin;
use crate::snapshot::Snapshot;
use crate::source::{self, Layer};
use crate::status::Outcome;
use crate::subscribe::Event;
use crate::sync::lock;

/// Where a reload puts a new valid candidate.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// It becomes the current version.
    Current,
    /// It becomes the canary (`from_sources`: read from the sources, not an overlay).
    Canary {
        config: CanaryConfig,
        from_sources: bool,
    },
}

/// The running canary, if any, and what the write side remembers of canaries.
#[derive(Default)]
pub(crate) struct CanarySlot {
    running: ArcSwapOption<Canary>,
    /// The running canary's id, 0 when none runs: the one load a request pays when none
    /// does, and what a thread's cache of it is checked against.
    id: AtomicU64,
    /// The highest version number a canary took: never given again.
    highest: AtomicU64,
    /// The content of the last canary aborted: not canaried again until it changes.
    refused: Mutex<Option<ContentHash>>,
    /// Whether the last reload stopped at refused content (under the writer lock).
    refused_now: AtomicBool,
}

thread_local! {
    /// The canary this thread saw last, by id: while it runs, each request on the thread
    /// takes it from here (a weak reference upgraded) rather than from the slot's
    /// `ArcSwap`. Weak: a canary that ended is not kept alive by the threads that saw it.
    static SEEN: RefCell<(u64, Weak<Canary>)> = const { RefCell::new((0, Weak::new())) };
}

impl CanarySlot {
    /// Whether a canary runs now.
    #[inline]
    pub(crate) fn is_running(&self) -> bool {
        self.id.load(Ordering::Relaxed) != 0
    }

    /// The running canary, if any: one load when none runs.
    #[inline]
    pub(crate) fn running(&self) -> Option<Arc<Canary>> {
        match self.id.load(Ordering::Acquire) {
            0 => None,
            id => self.running_cached(id),
        }
    }

    /// The running canary `id`: from this thread's cache when it holds that one, else
    /// from the slot (and cached).
    #[inline(never)]
    fn running_cached(&self, id: u64) -> Option<Arc<Canary>> {
        let cached = SEEN
            .try_with(|seen| {
                let seen = seen.borrow();
                if seen.0 == id { seen.1.upgrade() } else { None }
            })
            .ok()
            .flatten();
        cached.or_else(|| self.running_now())
    }

    #[cold]
    #[inline(never)]
    fn running_now(&self) -> Option<Arc<Canary>> {
        let running = self.running.load_full()?;
        let _ = SEEN.try_with(|seen| {
            if let Ok(mut seen) = seen.try_borrow_mut() {
                *seen = (running.id, Arc::downgrade(&running));
            }
        });
        Some(running)
    }

    /// The highest version number a canary took.
    pub(crate) fn highest_version(&self) -> u64 {
        self.highest.load(Ordering::SeqCst)
    }

    /// Whether the last reload found content refused as a canary before.
    pub(crate) fn was_refused(&self) -> bool {
        self.refused_now.load(Ordering::SeqCst)
    }

    /// Called at the start of each reload, under the writer lock.
    pub(crate) fn reading(&self) {
        self.refused_now.store(false, Ordering::SeqCst);
    }

    /// For a candidate of `hash`: the running canary when it is that content, or the
    /// current version unchanged when that content was aborted as a canary before.
    pub(crate) fn already(&self, current: &Arc<Snapshot>, hash: ContentHash) -> Option<Outcome> {
        if let Some(running) = self.running()
            && running.hash() == hash
        {
            return Some(Outcome::Canary {
                snapshot: Arc::clone(current),
                canary: Arc::clone(running.snapshot()),
            });
        }
        if *lock(&self.refused) == Some(hash) {
            self.refused_now.store(true, Ordering::SeqCst);
            tracing::debug!(%hash, "this content was aborted as a canary: not canaried again until a source changes");
            return Some(Outcome::Unchanged {
                snapshot: Arc::clone(current),
            });
        }
        None
    }

    /// Makes `snapshot` the canary (replacing one that runs: its window starts again).
    pub(crate) fn start(
        &self,
        publisher: &Publisher,
        current: &Snapshot,
        snapshot: &Arc<Snapshot>,
        config: &CanaryConfig,
        from_sources: bool,
    ) {
        self.highest.fetch_max(snapshot.version, Ordering::SeqCst);
        *lock(&self.refused) = None;
        let canary = Arc::new(Canary::new(
            Arc::clone(snapshot),
            config.clone(),
            from_sources,
        ));
        let id = canary.id;
        let previous = self.running.swap(Some(canary));
        self.id.store(id, Ordering::SeqCst);
        if let Some(previous) = previous {
            ended(
                publisher,
                &previous,
                current.version,
                "superseded",
                "a newer change replaced it".into(),
            );
        }
        tracing::info!(
            version = current.version,
            canary = snapshot.version,
            origin = %snapshot.origin,
            share = config.share,
            window_ms = config.window.as_millis() as u64,
            "canary started: the change serves a share of requests"
        );
        let _ = publisher.events.send(Event::CanaryStarted {
            version: current.version,
            canary: snapshot.version,
            origin: snapshot.origin.clone(),
            share: config.share,
        });
    }

    /// Ends a running canary because something else took its place.
    pub(crate) fn end_superseded(&self, publisher: &Publisher, why: &str) {
        if self.id.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(previous) = self.take() {
            let version = publisher.current.load().version;
            ended(publisher, &previous, version, "superseded", why.to_owned());
        }
    }

    fn take(&self) -> Option<Arc<Canary>> {
        self.id.store(0, Ordering::SeqCst);
        self.running.swap(None)
    }

    /// Takes `canary` out if it is the one running.
    fn take_if(&self, canary: &Arc<Canary>) -> Result<(), Errors> {
        self.check_running(canary)?;
        self.take();
        Ok(())
    }

    /// Whether `canary` is the one running, or why not.
    fn check_running(&self, canary: &Arc<Canary>) -> Result<(), Errors> {
        let running = self.running.load_full();
        if running.as_ref().is_some_and(|r| Arc::ptr_eq(r, canary)) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NotFound,
                format!("canary {} is no longer running", canary.version()),
            )
            .into())
        }
    }
}

/// Tells that a canary ended: the log, the event, the metric.
fn ended(
    publisher: &Publisher,
    canary: &Canary,
    version: u64,
    decision: &'static str,
    why: String,
) {
    tracing::info!(
        version,
        canary = canary.version(),
        decision,
        why,
        "canary ended"
    );
    metrics::counter!("eac_canary_decisions_total", "decision" => decision).increment(1);
    let _ = publisher.events.send(Event::CanaryEnded {
        version,
        canary: canary.version(),
        decision,
        why,
    });
}

impl Publisher {
    /// The running canary, if any.
    #[inline]
    pub(crate) fn canary(&self) -> Option<Arc<Canary>> {
        self.canary.running()
    }

    /// Makes `canary` the current version: a publish like any other (history, cells,
    /// subscribers told once), with the canary's own version number.
    pub(crate) fn promote(&self, canary: &Arc<Canary>, why: &str) -> Result<Outcome, Errors> {
        let mut last_read = self.write();
        let started = Instant::now();
        self.canary.take_if(canary)?;
        let current = self.current.load_full();
        let snapshot = Arc::clone(canary.snapshot());
        let outcome = self.store(current, snapshot);
        // What the sources say is read again (and committed) by the next reload.
        *last_read = None;
        drop(last_read);
        let origin = canary.snapshot().origin.clone();
        let result = Ok(outcome);
        self.record(&origin, &result, started);
        ended(self, canary, canary.version(), "promoted", why.to_owned());
        result
    }

    /// Starts a canary of what the sources say with `overlay` merged over them (an
    /// operator's `POST canary`), whatever the reload mode.
    pub(crate) fn canary_with(
        &self,
        overlay: &serde_json::Value,
        origin: Origin,
        config: &CanaryConfig,
    ) -> Result<Outcome, Errors> {
        let _writer = self.write();
        self.canary.reading();
        let started = Instant::now();
        let name = SourceName::Memory("canary overlay".to_owned());
        let layers = source::load_layers(&self.sources).and_then(|mut layers| {
            if let Some(errors) = super::preview::dotted_keys(overlay, &name) {
                return Err(errors);
            }
            layers.push(Layer::from_serialize(name, overlay).map_err(|e| vec![e])?);
            Ok(layers)
        });
        let target = Target::Canary {
            config: config.clone(),
            from_sources: false,
        };
        let result = match layers {
            Err(errors) => Err(into_errors(errors)),
            Ok(layers) => {
                let scoped = scope(layers, &self.keys, false);
                self.publish_scoped(scoped, origin.clone(), &|| true, &target)
            }
        };
        self.record(&origin, &result, started);
        result
    }

    /// Drops `canary`, recording why as a rejection (the status, the history, the
    /// events); its content is not canaried again until the sources change.
    pub(crate) fn abort(&self, canary: &Arc<Canary>, why: &str) -> Result<(), Errors> {
        // Under the writer lock nothing else ends it: the rejection is recorded before it
        // is taken out, so whoever sees it gone sees why.
        let _writer = self.write();
        self.canary.check_running(canary)?;
        *lock(&self.canary.refused) = Some(canary.hash());
        let version = self.current.load().version;
        self.reject(&canary.snapshot().origin, &aborted(why), None);
        self.canary.take_if(canary)?;
        ended(self, canary, version, "aborted", why.to_owned());
        Ok(())
    }
}
