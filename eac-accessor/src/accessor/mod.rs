//! The accessor: one handle to the current snapshot, its sources and its subscribers.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use arc_swap::Guard;
use tokio::sync::broadcast;

use crate::cell::SectionCell;
use crate::diff::Diff;
use crate::error::{Error, ErrorKind, Errors};
use crate::history::{HistoryEntry, Rejection};
use crate::publish::{Candidate, Outcome, Preview, Publisher};
use crate::resolve;
use crate::section::EaCSection;
use crate::snapshot::{Origin, Snapshot};
use crate::status::Status;
use crate::subscribe::{Event, SectionChange, SectionWatch, Subscription};
use crate::sync::lock;

mod builder;

pub use builder::Builder;

/// The central handle to live configuration: cheap to clone, shared by every part of a service.
///
/// It holds the current [`Snapshot`] in an [`ArcSwap`](arc_swap::ArcSwap): reading is one atomic load, with
/// no lock, and never waits for a reload. Reloads run the whole pipeline on a candidate
/// and swap it in only when every check passed.
///
/// ```
/// use eac_accessor::{EaCAccessor, EaCSection, Origin, source::{Format, Memory}};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize, JsonSchema)]
/// struct Greeting {
///     #[schemars(length(min = 1))]
///     message: String,
/// }
/// impl EaCSection for Greeting {
///     const PATH: &'static str = "greeting";
/// }
///
/// let doc = Memory::new("app", Format::Toml, "[greeting]\nmessage = \"hello\"\n");
/// let accessor = EaCAccessor::builder()
///     .section::<Greeting>()
///     .source(doc.clone())
///     .build()?;
/// assert_eq!(accessor.load().section::<Greeting>().message, "hello");
///
/// doc.set("[greeting]\nmessage = \"\"\n"); // breaks the schema
/// let rejected = accessor.reload(Origin::Refresh).unwrap_err();
/// assert_eq!(rejected.as_slice()[0].key(), Some("greeting.message"));
/// assert_eq!(accessor.load().version(), 1); // still the last good one
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
#[derive(Clone)]
pub struct EaCAccessor {
    pub(crate) publisher: Arc<Publisher>,
}

impl EaCAccessor {
    /// Starts configuring an accessor.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The current snapshot, as a cheap guard: one atomic load, no lock, no clone.
    ///
    /// Hold it for a short unit of work; for longer (across `.await`, or into another
    /// task) use [`load_full`](EaCAccessor::load_full). Read everything one unit of work
    /// needs from one snapshot: see [`Snapshot`]'s consistency rule.
    #[inline]
    pub fn load(&self) -> Guard<Arc<Snapshot>> {
        self.publisher.current.load()
    }

    /// Whether requests are metered now: an in-process canary or a fleet's gray release
    /// runs (then [`canary`](EaCAccessor::canary) and [`meter`](EaCAccessor::meter) say
    /// which). Two loads and no branch, for a layer's per-request check.
    #[inline]
    pub fn metering(&self) -> bool {
        self.publisher.canary.is_running() | self.publisher.meter.is_on()
    }

    /// The canary serving a share of requests, if one runs: one relaxed load when none
    /// does.
    #[inline]
    pub fn canary(&self) -> Option<Arc<crate::canary::Canary>> {
        self.publisher.canary()
    }

    /// While a fleet's gray release runs on this instance (feature `etcd`): where a layer in front of the service counts every
    /// request (its latency, and whether it failed with a 5xx status), for the
    /// release's judge to compare the canaries with the stable members. One relaxed load
    /// when none runs.
    #[inline]
    pub fn meter(&self) -> Option<Arc<crate::canary::RoleStats>> {
        self.publisher.meter.get()
    }

    /// What decides this instance's fleet's gray releases by hand, once the etcd source
    /// joined a fleet (feature `etcd`): the admin's `POST release/{id}/promote|abort`.
    pub fn release_control(&self) -> Option<Arc<dyn crate::canary::ReleaseControl>> {
        crate::sync::lock(&self.publisher.release_control).clone()
    }

    /// The current snapshot as an owned `Arc`, to keep as long as needed.
    #[inline]
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.publisher.current.load_full()
    }

    /// Reads every source now and publishes the result if it is new and valid.
    ///
    /// Returns [`Outcome::Unchanged`] when the merged content hashes the same as the
    /// current version, and every problem found when the candidate is rejected, in which
    /// case the current snapshot stays. Concurrent calls run one after the other. Blocks
    /// on file reads: from async code, call it in `spawn_blocking`.
    pub fn reload(&self, origin: Origin) -> Result<Outcome, Errors> {
        self.publisher.reload(origin, &|| true)
    }

    /// Republishes the document of kept version `version` as a new version (origin
    /// "rollback from N"), re-running every check and readiness hook.
    ///
    /// A version no longer kept is an [`ErrorKind::NotFound`] error. The rollback lasts
    /// until the next reload publishes what the sources say.
    pub fn rollback_to(&self, version: u64) -> Result<Outcome, Errors> {
        self.publisher
            .rollback_to(version, Origin::Rollback { from: version })
    }

    /// A dry run: validates `candidate` and diffs it against the current snapshot,
    /// publishing nothing and telling nobody.
    pub fn preview(&self, candidate: Candidate) -> Preview {
        self.publisher.preview(candidate)
    }

    /// The kept versions, oldest first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        lock(&self.publisher.history).entries()
    }

    /// The kept rejections, oldest first.
    pub fn rejections(&self) -> Vec<Rejection> {
        lock(&self.publisher.history).rejections()
    }

    /// The classified diff between two kept versions (secrets redacted).
    pub fn diff_versions(&self, from: u64, to: u64) -> Result<Diff, Errors> {
        let history = lock(&self.publisher.history);
        let find = |v: u64| {
            history
                .get(v)
                .map(|e| Arc::clone(&e.document))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "version {v} is not in the history (kept: {})",
                            history.kept_range()
                        ),
                    )
                })
        };
        let (a, b) = (find(from)?, find(to)?);
        let sections = self.section_paths();
        Ok(crate::diff::diff(
            &a,
            &b,
            &crate::diff::Context {
                secrets: &self.publisher.secrets,
                restarts: &self.publisher.restarts,
                sections: &sections,
                errors: &[],
            },
        ))
    }

    /// A receiver that wakes when section `T` changes.
    ///
    /// # Panics
    ///
    /// When `T` was not registered on the builder.
    pub fn subscribe<T: EaCSection>(&self) -> SectionWatch<T> {
        SectionWatch::new(self.publisher.watchers[self.index_of::<T>()].subscribe())
    }

    /// A shared handle to section `T` whose reads skip the section lookup: see
    /// [`SectionCell`].
    ///
    /// # Panics
    ///
    /// When `T` was not registered with `EaCAccessor::builder().section::<T>()`.
    pub fn section_cell<T: EaCSection>(&self) -> SectionCell<T> {
        SectionCell::of(&*self.publisher.cells[self.index_of::<T>()])
            .unwrap_or_else(|| unreachable!("the cell of section `T` is a `T`'s"))
    }

    /// Calls `callback` with the old and new value each time section `T` changes, in
    /// version order, on the thread that publishes; keep it short.
    ///
    /// The callback stays registered while the returned [`Subscription`] lives.
    ///
    /// # Panics
    ///
    /// When `T` was not registered on the builder.
    pub fn on_change<T, F>(&self, callback: F) -> Subscription
    where
        T: EaCSection,
        F: Fn(SectionChange<'_, T>) + Send + Sync + 'static,
    {
        let index = self.index_of::<T>();
        let callback = Arc::new(move |old: &Snapshot, new: &Snapshot| {
            callback(SectionChange {
                old: old.section::<T>(),
                new: new.section::<T>(),
                version: new.version(),
            })
        });
        let id = lock(&self.publisher.callbacks).add(index, callback);
        Subscription {
            callbacks: Arc::downgrade(&self.publisher.callbacks),
            id,
        }
    }

    /// A stream of everything that happens: publishes, unchanged reloads, rejections.
    ///
    /// Events sent before this call are not seen. A receiver that falls more than 256
    /// events behind skips the oldest (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.publisher.events.subscribe()
    }

    /// The current version and what the last reload did.
    pub fn status(&self) -> Status {
        let mut status = lock(&self.publisher.status).clone();
        status.history_store = lock(&self.publisher.history).store_status();
        status.sources = self
            .publisher
            .sources
            .iter()
            .filter_map(|s| s.status())
            .collect();
        status.resolvers =
            resolve::status(&self.publisher.resolvers, &self.publisher.current.load());
        status.canary = self.publisher.canary().map(|c| c.status());
        let current = self.publisher.current.load();
        status.restart_needed = self
            .publisher
            .restarts
            .iter()
            .filter(|key| {
                let pointer = crate::error::dotted_to_pointer(key);
                self.publisher.started_on.pointer(&pointer) != current.document.pointer(&pointer)
            })
            .cloned()
            .collect();
        status
    }

    /// Writes the versions the durable history store missed after failed writes (a full
    /// disk), as the next publish also does. Call it before shutting down.
    pub fn sync_history(&self) -> Result<(), Error> {
        lock(&self.publisher.history).sync()
    }

    /// The dotted paths of the registered sections, in registration order.
    pub fn section_paths(&self) -> Vec<&'static str> {
        self.publisher.specs.iter().map(|s| s.path).collect()
    }

    /// The dotted paths of every secret field; their values are never shown. A segment
    /// `*` stands for any element of a list or key of a map (`upstream.keys.*`).
    pub fn secret_paths(&self) -> &[String] {
        &self.publisher.secrets
    }

    fn index_of<T: EaCSection>(&self) -> usize {
        let id = TypeId::of::<T>();
        self.publisher
            .specs
            .iter()
            .position(|s| s.type_id == id)
            .unwrap_or_else(|| {
                panic!(
                    "section `{}` is not registered: add `.section::<{0}>()` to the EaCAccessor builder",
                    std::any::type_name::<T>()
                )
            })
    }
}

impl fmt::Debug for EaCAccessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EaCAccessor")
            .field("current", &self.publisher.current.load())
            .field("sources", &self.publisher.sources)
            .finish_non_exhaustive()
    }
}
