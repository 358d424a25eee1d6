//! The accessor: one handle to the current snapshot, its sources and its subscribers.

use std::any::TypeId;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, Guard};
use tokio::sync::{broadcast, watch};

use crate::cell::{self, Follow, NewCell, SectionCell};
use crate::diff::Diff;
use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::hash::ContentHash;
use crate::history::{History, HistoryEntry, Rejection, StoreStatus};
use crate::keys::{Keys, KeysSlot};
use crate::metrics;
use crate::publish::{self, Candidate, Hook, Outcome, Preview};
use crate::resolve::{self, Resolve, Resolver, ResolverStatus};
use crate::section::{AnySection, EaCSection, SectionSpec};
use crate::snapshot::{Origin, Snapshot};
use crate::source::{self, Env, Layer, Source, SourceStatus};
use crate::subscribe::{Callbacks, Event, SectionChange, SectionWatch, Subscription};

/// The central handle to live configuration: cheap to clone, shared by every part of a service.
///
/// It holds the current [`Snapshot`] in an [`ArcSwap`]: reading is one atomic load, with
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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) current: ArcSwap<Snapshot>,
    pub(crate) specs: Box<[SectionSpec]>,
    pub(crate) secrets: Arc<[String]>,
    /// The keys the sections own: everything else is not configuration.
    pub(crate) keys: Arc<Keys>,
    pub(crate) sources: Box<[Box<dyn Source>]>,
    pub(crate) hooks: Box<[(String, Box<Hook>)]>,
    pub(crate) resolvers: Box<[Box<dyn Resolve>]>,
    /// Serializes writers; holds the fingerprint of the sources the current version was
    /// read from, when it was.
    pub(crate) writer: Mutex<Option<u64>>,
    pub(crate) watchers: Box<[watch::Sender<(u64, AnySection)>]>,
    /// One [`SectionCell`](crate::SectionCell) per section, in registration order.
    pub(crate) cells: Box<[Box<dyn Follow>]>,
    pub(crate) callbacks: Arc<Mutex<Callbacks>>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) status: Mutex<Status>,
    pub(crate) history: Mutex<History>,
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
        self.inner.current.load()
    }

    /// The current snapshot as an owned `Arc`, to keep as long as needed.
    #[inline]
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// Reads every source now and publishes the result if it is new and valid.
    ///
    /// Returns [`Outcome::Unchanged`] when the merged content hashes the same as the
    /// current version, and every problem found when the candidate is rejected, in which
    /// case the current snapshot stays. Concurrent calls run one after the other. Blocks
    /// on file reads: from async code, call it in `spawn_blocking`.
    pub fn reload(&self, origin: Origin) -> Result<Outcome, Errors> {
        self.inner.reload(origin, &|| true)
    }

    /// [`reload`](EaCAccessor::reload), asking `commit` right before the store whether
    /// the caller still wants the result (a coordinator whose build timeout expired says no).
    pub(crate) fn reload_if(
        &self,
        origin: Origin,
        commit: &dyn Fn() -> bool,
    ) -> Result<Outcome, Errors> {
        self.inner.reload(origin, commit)
    }

    /// Republishes the document of kept version `version` as a new version (origin
    /// "rollback from N"), re-running every check and readiness hook.
    ///
    /// A version no longer kept is an [`ErrorKind::NotFound`] error. The rollback lasts
    /// until the next reload publishes what the sources say.
    pub fn rollback_to(&self, version: u64) -> Result<Outcome, Errors> {
        self.inner
            .rollback_to(version, Origin::Rollback { from: version })
    }

    /// Records a failure that happened after a publish (a failed health check): kept in
    /// the rejections and the status, and sent as an [`Event::Rejected`].
    pub(crate) fn note_failure(&self, origin: Origin, errors: &Errors) {
        let version = self.inner.current.load().version();
        tracing::warn!(version, %origin, %errors, "post-publish check failed");
        lock_status(&self.inner.status).last_rejection = Some(ReloadReport {
            at: SystemTime::now(),
            origin: origin.clone(),
            outcome: "rejected",
            version,
            duration: Duration::ZERO,
            errors: errors.as_slice().to_vec(),
        });
        self.inner
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_rejection(&origin, version, errors);
        let _ = self.inner.events.send(Event::Rejected {
            version,
            origin,
            errors: errors.clone(),
        });
    }

    /// Tells the event stream that a background source changed state.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn note_source(&self, status: crate::source::SourceStatus) {
        let _ = self.inner.events.send(Event::Source { status });
    }

    /// Puts `previous` back as a new version (origin auto-rollback), only while `failed`
    /// is still the current version.
    pub(crate) fn restore(&self, previous: &Snapshot, failed: u64) -> Result<Outcome, Errors> {
        self.inner.republish(
            Arc::clone(&previous.document),
            previous.version,
            Origin::AutoRollback {
                from: previous.version,
            },
            Some(failed),
        )
    }

    /// A dry run: validates `candidate` and diffs it against the current snapshot,
    /// publishing nothing and telling nobody.
    pub fn preview(&self, candidate: Candidate) -> Preview {
        self.inner.preview(candidate)
    }

    /// The kept versions, oldest first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        self.inner
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries()
    }

    /// The kept rejections, oldest first.
    pub fn rejections(&self) -> Vec<Rejection> {
        self.inner
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rejections()
    }

    /// The classified diff between two kept versions (secrets redacted).
    pub fn diff_versions(&self, from: u64, to: u64) -> Result<Diff, Errors> {
        let history = self.inner.history.lock().unwrap_or_else(|p| p.into_inner());
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
                secrets: &self.inner.secrets,
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
        SectionWatch::new(self.inner.watchers[self.index_of::<T>()].subscribe())
    }

    /// A shared handle to section `T` whose reads skip the section lookup: see
    /// [`SectionCell`].
    ///
    /// # Panics
    ///
    /// When `T` was not registered with `EaCAccessor::builder().section::<T>()`.
    pub fn section_cell<T: EaCSection>(&self) -> SectionCell<T> {
        SectionCell::of(&*self.inner.cells[self.index_of::<T>()])
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
        let id = self
            .inner
            .callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(index, callback);
        Subscription {
            callbacks: Arc::downgrade(&self.inner.callbacks),
            id,
        }
    }

    /// A stream of everything that happens: publishes, unchanged reloads, rejections.
    ///
    /// Events sent before this call are not seen. A receiver that falls more than 256
    /// events behind skips the oldest (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The current version and what the last reload did.
    pub fn status(&self) -> Status {
        let mut status = lock_status(&self.inner.status).clone();
        status.history_store = self
            .inner
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .store_status();
        status.sources = self
            .inner
            .sources
            .iter()
            .filter_map(|s| s.status())
            .collect();
        status.resolvers = resolve::status(&self.inner.resolvers, &self.inner.current.load());
        status
    }

    /// Writes the versions the durable history store missed after failed writes (a full
    /// disk), as the next publish also does. Call it before shutting down.
    pub fn sync_history(&self) -> Result<(), Error> {
        self.inner
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sync()
    }

    /// Keeps a dry run of the sources as the pending change (manual reload mode): a
    /// valid change is shown in the status and sent as [`Event::Pending`]; an invalid
    /// one is recorded as a rejection; the same content as now clears the pending change.
    pub(crate) fn note_pending(&self, origin: Origin, preview: &Preview) -> Result<(), Errors> {
        let version = self.inner.current.load().version();
        if let Some(errors) = Errors::from_vec(preview.errors.clone()) {
            tracing::warn!(version, %origin, %errors, "change rejected; nothing is pending");
            let mut status = lock_status(&self.inner.status);
            status.record(&origin, &Err(errors.clone()), Duration::ZERO);
            status.pending = None;
            drop(status);
            self.inner
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_rejection(&origin, version, &errors);
            let _ = self.inner.events.send(Event::Rejected {
                version,
                origin,
                errors: errors.clone(),
            });
            return Err(errors);
        }
        let mut status = lock_status(&self.inner.status);
        if preview.unchanged {
            status.pending = None;
            status.differs_from_sources = false;
            return Ok(());
        }
        tracing::info!(version, %origin, "change pending: publish it with a refresh");
        status.pending = Some(PendingChange {
            at: SystemTime::now(),
            origin: origin.clone(),
            diff: preview.diff.clone(),
        });
        status.differs_from_sources = true;
        drop(status);
        let _ = self.inner.events.send(Event::Pending {
            version,
            origin,
            diff: preview.diff.clone(),
        });
        Ok(())
    }

    /// The dotted paths of the registered sections, in registration order.
    pub fn section_paths(&self) -> Vec<&'static str> {
        self.inner.specs.iter().map(|s| s.path).collect()
    }

    /// The dotted paths of every secret field; their values are never shown. A segment
    /// `*` stands for any element of a list or key of a map (`upstream.keys.*`).
    pub fn secret_paths(&self) -> &[String] {
        &self.inner.secrets
    }

    fn index_of<T: EaCSection>(&self) -> usize {
        let id = TypeId::of::<T>();
        self.inner
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
            .field("current", &self.inner.current.load())
            .field("sources", &self.inner.sources)
            .finish_non_exhaustive()
    }
}

/// Configures an [`EaCAccessor`]: its sections, its sources in merge order, and hooks.
pub struct Builder {
    specs: Vec<SectionSpec>,
    /// Makes each section's [`SectionCell`], beside `specs`.
    cells: Vec<NewCell>,
    errors: Vec<Error>,
    sources: Vec<Box<dyn Source>>,
    hooks: Vec<(String, Box<Hook>)>,
    resolvers: Vec<Box<dyn Resolve>>,
    drain_window: Duration,
    history_limit: usize,
    durable_history: Option<PathBuf>,
    history_label: Option<String>,
    fallback_to_last_good: bool,
    /// Off for `check`: a dry run reports what the sources say, never a cache.
    source_fallback: bool,
    allow_unknown_keys: bool,
    keys: KeysSlot,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            specs: Vec::new(),
            cells: Vec::new(),
            errors: Vec::new(),
            sources: Vec::new(),
            hooks: Vec::new(),
            resolvers: Vec::new(),
            drain_window: Duration::ZERO,
            history_limit: 10,
            durable_history: None,
            history_label: None,
            fallback_to_last_good: false,
            source_fallback: true,
            allow_unknown_keys: false,
            keys: KeysSlot::default(),
        }
    }
}

impl Builder {
    /// Registers section `T`: it is schema-checked and deserialized on every publish.
    pub fn section<T: EaCSection>(mut self) -> Self {
        if self.specs.iter().any(|s| s.type_id == TypeId::of::<T>()) {
            return self;
        }
        match SectionSpec::of::<T>() {
            Ok(spec) => {
                self.specs.push(spec);
                self.cells.push(cell::new_cell::<T>);
            }
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Adds a source; later sources win over earlier ones.
    ///
    /// An [`Env`] overlay added here maps only the variables that land on a key a
    /// registered section owns, and reads each value as the schema types that key.
    pub fn source(mut self, source: impl Source) -> Self {
        let mut source = source;
        if let Some(env) = (&mut source as &mut dyn std::any::Any).downcast_mut::<Env>() {
            env.bind(Arc::clone(&self.keys));
        }
        self.sources.push(Box::new(source));
        self
    }

    /// Ignores keys that no registered section owns, everywhere, instead of rejecting
    /// the candidate; off by default.
    ///
    /// By default a top-level key that no section owns (a misspelled `[htpp]`) or a key
    /// inside a section that no field owns (`api_kee`) rejects the candidate, naming the
    /// key, its source and the nearest name. Allowed, such keys are dropped before the
    /// candidate is hashed: never stored, hashed, diffed or shown. A top-level `$schema`
    /// key (for editors) is always ignored. A section can allow unknown keys for itself
    /// alone with [`EaCSection::ALLOW_UNKNOWN_KEYS`] (`#[eac(allow_unknown_keys)]`).
    pub fn allow_unknown_keys(mut self, allow: bool) -> Self {
        self.allow_unknown_keys = allow;
        self
    }

    /// Adds a readiness hook: it sees each fully validated candidate before it is
    /// published and can refuse it with a reason (a pool that cannot reach the new
    /// database URL, say). Hooks run on the publishing thread; keep them short.
    pub fn readiness<F>(mut self, name: impl Into<String>, hook: F) -> Self
    where
        F: Fn(&Snapshot) -> Result<(), String> + Send + Sync + 'static,
    {
        self.hooks.push((name.into(), Box::new(hook)));
        self
    }

    /// Registers a [`Resolver`]: its value is built from the sections it reads on every
    /// publish that changed one of them, after validation and before the swap, and kept
    /// in the snapshot ([`Snapshot::resolved`]). A build that fails rejects the candidate.
    ///
    /// Every section it reads must be registered too; see [`resolve`](crate::resolve).
    pub fn resolver<R: Send + Sync + 'static>(mut self, resolver: Resolver<R>) -> Self {
        self.resolvers
            .push(resolve::register(resolver, self.drain_window));
        self
    }

    /// How long a replaced resolver value waits after its replacement before its drain
    /// hook runs ([`Resolver::on_drain`]); default zero: as soon as no snapshot holds it.
    /// Applies to the resolvers registered after this call (`EAC_REFRESH_DRAIN_MS` in
    /// `live_server`).
    pub fn drain_window(mut self, window: Duration) -> Self {
        self.drain_window = window;
        self
    }

    /// How many published versions (and rejections) to keep; default 10, at least 1.
    pub fn history_limit(mut self, versions: usize) -> Self {
        self.history_limit = versions.max(1);
        self
    }

    /// Keeps the history in a crash-safe file in `dir` as well, read back at the next
    /// start: versions keep counting up across restarts, and rollback reaches versions
    /// from before the restart. The file holds whole documents, secrets included, and
    /// is made readable by its owner only.
    pub fn durable_history(mut self, dir: impl Into<PathBuf>) -> Self {
        self.durable_history = Some(dir.into());
        self
    }

    /// Says what this accessor serves (its configuration folder, say), written into each
    /// durable history record. When the store last served something else, a warning is
    /// logged and [`StoreStatus::served_before`](crate::StoreStatus::served_before) says
    /// so: a state dir moved along with its service is fine, one shared by two is not.
    pub fn history_label(mut self, label: impl Into<String>) -> Self {
        self.history_label = Some(label.into());
        self
    }

    /// When the sources are broken at start, starts on the last good document from the
    /// durable history instead of failing (the rejection is kept in the status). Off by
    /// default; needs [`durable_history`](Builder::durable_history).
    pub fn fallback_to_last_good(mut self, on: bool) -> Self {
        self.fallback_to_last_good = on;
        self
    }

    /// Loads, validates and publishes version 1, or fails with every problem found.
    ///
    /// When the sources are rejected and one of them keeps a last-known-good copy (a
    /// remote source with a cache, see [`Source::fall_back`]), they are read once more
    /// from that copy; the rejection is kept in the status and the history.
    ///
    /// With a durable history, versions continue from the last stored one (and identical
    /// content keeps its version number).
    pub fn build(self) -> Result<EaCAccessor, Errors> {
        let started = Instant::now();
        let result = self.build_inner(started);
        match &result {
            Ok(inner) => {
                let snapshot = inner.current.load();
                tracing::info!(version = snapshot.version, hash = %snapshot.hash, origin = %snapshot.origin, "configuration published at startup");
                metrics::record("published", snapshot.version, started.elapsed());
            }
            Err(errors) => {
                tracing::error!(%errors, "configuration rejected at startup");
                metrics::record("rejected", 0, started.elapsed());
            }
        }
        Ok(EaCAccessor {
            inner: Arc::new(result?),
        })
    }

    /// Runs the whole pipeline on the sources — read, merge, unknown keys, schema,
    /// deserialize, `validate`, readiness hooks — and returns every error, exactly as a
    /// live reload would reject the candidate; publishes nothing, opens no durable
    /// history, records no metric (`nginx -t` for a configuration).
    ///
    /// ```
    /// use eac_accessor::{EaCAccessor, EaCSection, source::{Format, Memory}};
    ///
    /// #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// struct Limits {
    ///     #[schemars(range(min = 1))]
    ///     max_body_bytes: u64,
    /// }
    ///
    /// let broken = Memory::new("app.toml", Format::Toml, "[limits]\nmax_body_bytes = 0\n");
    /// let errors = EaCAccessor::builder().section::<Limits>().source(broken).check().unwrap_err();
    /// assert_eq!(errors.as_slice()[0].key(), Some("limits.max_body_bytes"));
    /// ```
    pub fn check(mut self) -> Result<(), Errors> {
        self.durable_history = None;
        self.fallback_to_last_good = false;
        self.source_fallback = false;
        self.build_inner(Instant::now()).map(drop)
    }

    /// The JSON Schema (draft-07) of every registered section, nested at its path: the
    /// document that editors' language servers read to check and complete a config file
    /// (`# yaml-language-server: $schema=…`, `#:schema …` in TOML, `"$schema"` in JSON).
    pub fn json_schema(&self) -> serde_json::Value {
        crate::schema::export(&self.specs, self.allow_unknown_keys)
    }

    fn build_inner(mut self, started: Instant) -> Result<Inner, Errors> {
        let sections: Vec<TypeId> = self.specs.iter().map(|s| s.type_id).collect();
        self.errors
            .extend(resolve::check(&self.resolvers, &sections));
        if let Some(errors) = Errors::from_vec(self.errors) {
            return Err(errors);
        }
        let mut history = match &self.durable_history {
            Some(dir) => History::open(dir, self.history_limit, self.history_label.clone())?,
            None => History::new(self.history_limit),
        };
        let secrets: Arc<[String]> = self
            .specs
            .iter()
            .flat_map(|s| s.secrets.iter().cloned())
            .collect();
        let keys = Arc::new(Keys::new(
            self.specs.iter().map(|s| s.keys.clone()).collect(),
            self.allow_unknown_keys,
        ));
        // Env overlays read from here on map only onto these keys.
        let _ = self.keys.set(Arc::clone(&keys));
        let last = history.last().cloned();
        let prepare_checked = |scoped, hash, version, origin| {
            let mut snapshot =
                publish::prepare(&self.specs, &secrets, &keys, scoped, hash, version, origin)?;
            resolve::resolve_all(&self.resolvers, None, &mut snapshot)?;
            publish::check_hooks(&self.hooks, &snapshot)?;
            Ok::<_, Errors>(snapshot)
        };

        let read_sources = |read: &mut Option<u64>| {
            source::load_layers(&self.sources)
                .and_then(|layers| {
                    *read = Some(source::fingerprint(&layers));
                    publish::scope(layers, &keys, false)
                })
                .map_err(publish::into_errors)
                .and_then(|scoped| {
                    let hash = ContentHash::of(scoped.document());
                    // Same content as the last stored version: it keeps its number.
                    let (version, stored) = match &last {
                        Some(e) if e.hash == hash => (e.version, true),
                        Some(e) => (publish::next_version(e.version)?, false),
                        None => (1, false),
                    };
                    Ok((
                        prepare_checked(scoped, hash, version, Origin::Startup)?,
                        stored,
                    ))
                })
        };

        let mut read = None;
        // Rejected, but read again from a source's own last-known-good copy.
        let mut fell_back = None;
        let from_sources = match read_sources(&mut read) {
            Err(errors) if self.source_fallback && fall_back(&self.sources, &errors) => {
                let mut again = None;
                match read_sources(&mut again) {
                    Ok(built) => {
                        tracing::warn!(%errors, "sources rejected at startup; started on a source's last-known-good copy");
                        read = again;
                        fell_back = Some(errors);
                        Ok(built)
                    }
                    Err(_) => Err(errors),
                }
            }
            other => other,
        };
        let (snapshot, stored, rejected) = match (from_sources, &last) {
            (Ok((snapshot, stored)), _) => (snapshot, stored, None),
            (Err(errors), Some(entry)) if self.fallback_to_last_good => {
                tracing::warn!(%errors, version = entry.version, "sources rejected at startup; starting on the last good version from the history");
                let name = SourceName::Memory(format!("history version {}", entry.version));
                let layer = Layer::from_serialize(name, &*entry.document)?;
                let scoped =
                    publish::scope(vec![layer], &keys, true).map_err(publish::into_errors)?;
                let origin = Origin::Other {
                    reason: format!("last good version {} from the history", entry.version),
                };
                let snapshot = prepare_checked(scoped, entry.hash, entry.version, origin)?;
                (snapshot, true, Some(errors))
            }
            (Err(errors), _) => return Err(errors),
        };

        let paths: Vec<&'static str> = self.specs.iter().map(|s| s.path).collect();
        if !stored {
            // A failure is kept in the store's status and retried at the next publish.
            let _ = history.push(&snapshot, paths.iter().map(|p| (*p).to_owned()).collect());
        }
        let watchers = snapshot
            .sections
            .iter()
            .map(|(_, _, section)| watch::Sender::new((snapshot.version, Arc::clone(section))))
            .collect();
        let mut status = Status {
            version: snapshot.version,
            hash: snapshot.hash,
            published_at: snapshot.published_at,
            last_reload: None,
            last_rejection: None,
            pending: None,
            differs_from_sources: false,
            history_store: None,
            sources: Vec::new(),
            resolvers: Vec::new(),
        };
        let origin = snapshot.origin.clone();
        let snapshot = Arc::new(snapshot);
        let cells = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, new_cell)| new_cell(&snapshot, i))
            .collect();
        if let Some(errors) = &fell_back {
            // Said before the publish, so that the last reload is the publish.
            status.record(&Origin::Startup, &Err(errors.clone()), started.elapsed());
            history.push_rejection(&Origin::Startup, snapshot.version, errors);
        }
        status.record(
            &origin,
            &Ok(Outcome::Published {
                snapshot: Arc::clone(&snapshot),
                changed: paths,
            }),
            started.elapsed(),
        );
        // After a fallback, the current version was not read from the sources.
        let read = if rejected.is_none() {
            self.sources.iter().for_each(|s| s.committed());
            read
        } else {
            None
        };
        if let Some(errors) = rejected {
            status.differs_from_sources = true;
            status.record(&Origin::Startup, &Err(errors.clone()), started.elapsed());
            history.push_rejection(&Origin::Startup, snapshot.version, &errors);
        }
        Ok(Inner {
            current: ArcSwap::new(snapshot),
            specs: self.specs.into_boxed_slice(),
            secrets,
            keys,
            sources: self.sources.into_boxed_slice(),
            hooks: self.hooks.into_boxed_slice(),
            resolvers: self.resolvers.into_boxed_slice(),
            writer: Mutex::new(read),
            watchers,
            cells,
            callbacks: Arc::default(),
            events: broadcast::channel(256).0,
            status: Mutex::new(status),
            history: Mutex::new(history),
        })
    }
}

/// Asks every source to fall back to its last-known-good copy; true when one did.
fn fall_back(sources: &[Box<dyn Source>], why: &Errors) -> bool {
    sources
        .iter()
        .fold(false, |any, source| source.fall_back(why) | any)
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("sections", &self.specs)
            .field("sources", &self.sources)
            .field(
                "hooks",
                &self.hooks.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The current version and the last reloads' results, for status pages and health checks.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Status {
    /// The version readers see.
    pub version: u64,
    /// Its content hash.
    pub hash: ContentHash,
    /// When it was published.
    #[serde(serialize_with = "unix_seconds")]
    pub published_at: SystemTime,
    /// The most recent reload, whatever its outcome.
    pub last_reload: Option<ReloadReport>,
    /// The most recent rejected reload.
    pub last_rejection: Option<ReloadReport>,
    /// A valid change found in the sources but not published (manual reload mode).
    pub pending: Option<PendingChange>,
    /// Whether the running version differs from what the sources say: after a
    /// rollback, a start on the last good version, or with a pending change.
    pub differs_from_sources: bool,
    /// The durable history store's state, when there is one.
    pub history_store: Option<StoreStatus>,
    /// The state of each source that fetches in the background (a remote document, an
    /// etcd prefix), in merge order; empty when every source is read on demand.
    pub sources: Vec<SourceStatus>,
    /// Each resolver's current value: the version that built it, when and how fast, and
    /// how many replaced values are still alive.
    pub resolvers: Vec<ResolverStatus>,
}

/// A change found in the sources and validated, waiting for an operator's refresh.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct PendingChange {
    /// When it was found.
    #[serde(serialize_with = "unix_seconds")]
    pub at: SystemTime,
    /// What found it (a file change, a poll, a signal).
    pub origin: Origin,
    /// The classified changes from the running version (secrets redacted).
    pub diff: Diff,
}

/// What one reload did.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// When it finished.
    #[serde(serialize_with = "unix_seconds")]
    pub at: SystemTime,
    /// What caused it.
    pub origin: Origin,
    /// `"published"`, `"unchanged"` or `"rejected"`.
    pub outcome: &'static str,
    /// The version current after it.
    pub version: u64,
    /// How long it took (serialized as `duration_ms`).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// Every problem, when rejected (empty otherwise).
    pub errors: Vec<Error>,
}

impl Status {
    pub(crate) fn record(
        &mut self,
        origin: &Origin,
        result: &Result<Outcome, Errors>,
        took: Duration,
    ) {
        let (outcome, errors) = match result {
            Ok(outcome) => {
                let snapshot = outcome.snapshot();
                // A rollback serves what the sources no longer say; anything else was
                // read from them.
                self.differs_from_sources = matches!(
                    origin,
                    Origin::Rollback { .. } | Origin::AutoRollback { .. }
                );
                if !self.differs_from_sources {
                    self.pending = None;
                }
                self.version = snapshot.version;
                self.hash = snapshot.hash;
                self.published_at = snapshot.published_at;
                (outcome.as_str(), Vec::new())
            }
            Err(errors) => ("rejected", errors.as_slice().to_vec()),
        };
        let report = ReloadReport {
            at: SystemTime::now(),
            origin: origin.clone(),
            outcome,
            version: self.version,
            duration: took,
            errors,
        };
        if report.outcome == "rejected" {
            self.last_rejection = Some(report.clone());
        }
        self.last_reload = Some(report);
    }
}

fn lock_status(m: &Mutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn unix_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    s.serialize_f64(secs)
}

pub(crate) fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}
