//! Change subscriptions per section, and the stream of everything that happened.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, Weak};

use crate::sync::lock;

use tokio::sync::watch;

use crate::error::Errors;
use crate::hash::ContentHash;
use crate::section::{AnySection, EaCSection};
use crate::snapshot::{Origin, Snapshot};

/// Something that happened to the configuration; see [`EaCAccessor::events`](crate::EaCAccessor::events).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A new version was published.
    Published {
        /// The new version.
        version: u64,
        /// Its content hash.
        hash: ContentHash,
        /// What caused it.
        origin: Origin,
        /// The paths of the sections whose value changed.
        changed: Vec<&'static str>,
    },
    /// A reload found the same content as the current version; nothing was published.
    Unchanged {
        /// The version still current.
        version: u64,
        /// What caused the reload.
        origin: Origin,
    },
    /// A valid change was found and is waiting for an operator's refresh (manual
    /// reload mode); nothing was published.
    Pending {
        /// The version still current.
        version: u64,
        /// What found the change.
        origin: Origin,
        /// The classified changes from the current version (secrets redacted).
        diff: crate::diff::Diff,
    },
    /// The durable history store could not be written; the version is served and kept
    /// in memory, and written as soon as a write succeeds.
    HistoryStoreFailed {
        /// The version that could not be written.
        version: u64,
        /// Why, naming the store's file.
        error: crate::error::Error,
    },
    /// A source that fetches in the background changed state: it was reached or lost,
    /// or it started or stopped serving its last-known-good cache.
    Source {
        /// The source's state now (no secret in it).
        status: crate::source::SourceStatus,
    },
    /// An input was rejected and held back: the rest of the change was published
    /// (see [`Status::held_back`](crate::Status::held_back)); sent after its
    /// [`Published`](Event::Published).
    HeldBack {
        /// The version published without it.
        version: u64,
        /// What caused the reload.
        origin: Origin,
        /// The input, as errors name it (a file, a URL without credentials, an etcd key).
        input: String,
        /// Why it was rejected.
        errors: Errors,
    },
    /// A valid change became the canary: it serves a share of the requests while the
    /// current version stays (see [`canary`](crate::canary)).
    CanaryStarted {
        /// The version still current.
        version: u64,
        /// The canary's version.
        canary: u64,
        /// What caused it.
        origin: Origin,
        /// The share of requests it serves.
        share: f64,
    },
    /// A canary ended: `promoted` (it is now the current version), `aborted` (the judge
    /// or an operator refused it, with why), or `superseded` (a publish or a change back
    /// to the current content replaced it).
    CanaryEnded {
        /// The version current after it.
        version: u64,
        /// The canary's version.
        canary: u64,
        /// `promoted`, `aborted` or `superseded`.
        decision: &'static str,
        /// Why: the judge's figures, or who decided.
        why: String,
    },
    /// A fleet's gray release started or ended, as this member saw it (feature `etcd`).
    Release {
        /// The release's id.
        release: String,
        /// `started`, `promoted` or `aborted`.
        step: &'static str,
        /// This member's part in it: `canary` or `stable`.
        role: &'static str,
        /// Why it ended: the judge's figures, or who decided.
        why: Option<String>,
    },
    /// A candidate was rejected; the current version stays.
    Rejected {
        /// The version still current.
        version: u64,
        /// What caused the reload.
        origin: Origin,
        /// Every problem found.
        errors: Errors,
    },
}

/// A receiver that wakes when one section's value changes (a `tokio::sync::watch` for a section).
///
/// Like `watch`, it holds the latest value: a slow receiver that misses several changes
/// sees the newest one, and never an older one after a newer. It never wakes for a
/// rejected or unchanged candidate, nor for a publish that left this section as it was.
/// For a call on every change, use [`EaCAccessor::on_change`](crate::EaCAccessor::on_change).
pub struct SectionWatch<T> {
    rx: watch::Receiver<(u64, AnySection)>,
    _type: PhantomData<fn() -> T>,
}

impl<T: EaCSection> SectionWatch<T> {
    pub(crate) fn new(rx: watch::Receiver<(u64, AnySection)>) -> Self {
        SectionWatch {
            rx,
            _type: PhantomData,
        }
    }

    /// Waits until the section changes after the last value seen by this receiver.
    ///
    /// Fails only when the accessor has been dropped.
    pub async fn changed(&mut self) -> Result<(), Closed> {
        self.rx.changed().await.map_err(|_| Closed)
    }

    /// Whether the section changed since the last value seen.
    pub fn has_changed(&self) -> bool {
        self.rx.has_changed().unwrap_or(false)
    }

    /// The latest value and the version that published it; marks it seen.
    pub fn latest(&mut self) -> (u64, Arc<T>) {
        let (version, any) = self.rx.borrow_and_update().clone();
        // The sender for `T`'s slot only ever holds a `T`.
        let section = any
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("section slot holds its own type"));
        (version, section)
    }
}

impl<T> fmt::Debug for SectionWatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectionWatch")
            .field("section", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// The accessor is gone, so no further change can come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the EaCAccessor was dropped")
    }
}

impl std::error::Error for Closed {}

/// One change of a section, given to an [`on_change`](crate::EaCAccessor::on_change) callback.
#[derive(Debug)]
#[non_exhaustive]
pub struct SectionChange<'a, T> {
    /// The value before.
    pub old: &'a T,
    /// The value now.
    pub new: &'a T,
    /// The version that was just published.
    pub version: u64,
}

pub(crate) type Callback = dyn Fn(&Snapshot, &Snapshot) + Send + Sync;

/// Registered callbacks, in registration order.
#[derive(Default)]
pub(crate) struct Callbacks {
    next_id: u64,
    list: Vec<(u64, usize, Arc<Callback>)>,
}

impl Callbacks {
    pub(crate) fn add(&mut self, section: usize, callback: Arc<Callback>) -> u64 {
        self.next_id += 1;
        self.list.push((self.next_id, section, callback));
        self.next_id
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.list.retain(|(i, _, _)| *i != id);
    }

    /// The callbacks for the changed sections, copied so that they run without the lock.
    pub(crate) fn for_sections(&self, changed: &[usize]) -> Vec<Arc<Callback>> {
        self.list
            .iter()
            .filter(|(_, s, _)| changed.contains(s))
            .map(|(_, _, c)| Arc::clone(c))
            .collect()
    }
}

/// Keeps an [`on_change`](crate::EaCAccessor::on_change) callback registered; dropping it
/// unregisters the callback.
///
/// No publish that starts after the drop calls the callback. A publish already telling
/// its subscribers when the drop happens (on another thread) may still call it once, for
/// its version — a version that was current before the drop returned. Callbacks run
/// without the registry's lock, so that one may drop its own subscription.
#[must_use = "dropping the Subscription unregisters the callback (a publish already under way may still call it once)"]
pub struct Subscription {
    pub(crate) callbacks: Weak<Mutex<Callbacks>>,
    pub(crate) id: u64,
}

impl Subscription {
    /// Keeps the callback registered for as long as the accessor lives.
    pub fn detach(mut self) {
        self.callbacks = Weak::new();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(callbacks) = self.callbacks.upgrade() {
            lock(&callbacks).remove(self.id);
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}
