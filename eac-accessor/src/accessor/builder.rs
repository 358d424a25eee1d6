//! [`Builder`]: sections, sources, hooks and resolvers, and the first publish.

use std::any::TypeId;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, watch};

use crate::cell::{self, NewCell};
use crate::error::{Error, Errors, SourceName};
use crate::history::History;
use crate::keys::{Keys, KeysSlot};
use crate::metrics;
use crate::publish::{self, Hook, Outcome, Publisher};
use crate::resolve::{self, Resolve, Resolver};
use crate::section::{EaCSection, SectionSpec};
use crate::snapshot::{Origin, Snapshot};
use crate::source::{self, Env, Layer, Source};
use crate::status::Status;

use super::EaCAccessor;

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
    /// The remote sources added, for [`Builder::build_async`] to start.
    #[cfg(feature = "http")]
    remotes: Vec<source::Http>,
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
            #[cfg(feature = "http")]
            remotes: Vec::new(),
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
        #[cfg(feature = "http")]
        if let Some(http) = (&source as &dyn std::any::Any).downcast_ref::<source::Http>() {
            self.remotes.push(http.clone());
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
    ///
    /// # On an async runtime
    ///
    /// `build` is synchronous and blocks its thread until version 1 is published: it
    /// reads every file, parses, validates, runs the readiness hooks and the resolvers'
    /// builds, and writes the durable history (with an `fsync`). Called from async code
    /// it works on either kind of Tokio runtime — it never panics for being there — but
    /// it holds that worker for as long (milliseconds for a few local files, longer
    /// with a slow disk or a slow resolver), and on a current-thread runtime nothing
    /// else runs meanwhile. Before the service accepts work that is usually fine; else
    /// use [`build_async`](Builder::build_async), which runs it on Tokio's blocking pool.
    ///
    /// `build` never touches the network. A remote source (`source::Http`, feature
    /// `http`) serves what it fetched last; one that was never `start`ed has nothing
    /// yet, and `build` fails with a [`SourceMissing`](crate::ErrorKind::SourceMissing)
    /// error naming its URL ("not fetched yet"). [`build_async`](Builder::build_async)
    /// starts such sources itself.
    pub fn build(self) -> Result<EaCAccessor, Errors> {
        // Before the first metric is recorded, to the recorder installed now.
        metrics::describe();
        let started = Instant::now();
        let result = self.build_inner(started);
        match &result {
            Ok(inner) => {
                let snapshot = inner.current.load();
                tracing::info!(version = snapshot.version, hash = %snapshot.hash, origin = %snapshot.origin, "configuration published at startup");
                metrics::record("published", snapshot.version, Some(started.elapsed()));
            }
            // Not the configuration: another process owns the state dir.
            Err(errors) if errors.has(crate::ErrorKind::InUse) => {
                tracing::error!(%errors, "cannot start: the state dir is in use");
            }
            Err(errors) => {
                tracing::error!(%errors, "configuration rejected at startup");
                metrics::record("rejected", 0, Some(started.elapsed()));
            }
        }
        Ok(EaCAccessor {
            publisher: Arc::new(result?),
        })
    }

    /// [`build`](Builder::build) from async code: starts every remote source that was
    /// not started yet (`source::Http` with feature `http`: one fetch each, all at once,
    /// or its last-good cache, as `Http::start` does), then builds on Tokio's blocking
    /// pool, so that no worker thread is held while files are read and checked.
    ///
    /// Fails with every start that failed (each naming its URL, without credentials),
    /// else with what `build` returns. Must be awaited on a Tokio runtime; elsewhere it
    /// fails with an error that says so.
    ///
    /// ```
    /// use eac_accessor::{EaCAccessor, EaCSection, source::{Format, Memory}};
    ///
    /// #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// struct Greeting {
    ///     message: String,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), eac_accessor::Errors> {
    /// let accessor = EaCAccessor::builder()
    ///     .section::<Greeting>()
    ///     // An `Http` source added here would be fetched first.
    ///     .source(Memory::new("app.toml", Format::Toml, "[greeting]\nmessage = \"hi\"\n"))
    ///     .build_async()
    ///     .await?;
    /// assert_eq!(accessor.load().section::<Greeting>().message, "hi");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn build_async(self) -> Result<EaCAccessor, Errors> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Errors::from(Error::new(
                crate::ErrorKind::Io,
                "`build_async` needs a Tokio runtime: await it on one, or call `build`",
            )));
        }
        #[cfg(feature = "http")]
        {
            metrics::describe();
            let started = Instant::now();
            let starts = self.remotes.iter().map(source::Http::start_unless_started);
            let failed: Vec<Error> = futures_util::future::join_all(starts)
                .await
                .into_iter()
                .filter_map(Result::err)
                .collect();
            if let Some(errors) = Errors::from_vec(failed) {
                tracing::error!(%errors, "configuration rejected at startup: a remote source could not be started");
                metrics::record("rejected", 0, Some(started.elapsed()));
                return Err(errors);
            }
        }
        match tokio::task::spawn_blocking(move || self.build()).await {
            Ok(result) => result,
            // A readiness hook or a resolver panicked: the caller's panic, as with `build`.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Errors::from(Error::new(
                crate::ErrorKind::Io,
                "the runtime shut down while the configuration was being built",
            ))),
        }
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

    /// Whether a section is registered at `path` (dotted: `server.http`).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn has_section(&self, path: &str) -> bool {
        self.specs.iter().any(|s| s.path == path)
    }

    /// The registered sections' paths, in registration order.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn section_paths(&self) -> Vec<&'static str> {
        self.specs.iter().map(|s| s.path).collect()
    }

    /// [`check`](Builder::check) for a part of a configuration: a section that no source
    /// sets at all is not required (another place holds it), while every section a
    /// source sets is checked whole — schema, `validate`, unknown keys — and so is every
    /// resolver whose sections are all there. Readiness hooks run only when no section
    /// was left out (they see the whole configuration). What `live_server put` checks a
    /// fleet's prefix with: members take the sections it lacks from their files.
    ///
    /// ```
    /// use eac_accessor::{EaCAccessor, EaCSection, source::{Format, Memory}};
    ///
    /// #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// struct Limits { max_body_bytes: u64 }
    /// #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// struct Greeting { message: String }
    ///
    /// let only_limits = || Memory::new("prefix", Format::Toml, "[limits]\nmax_body_bytes = 10\n");
    /// let builder = || EaCAccessor::builder().section::<Limits>().section::<Greeting>();
    /// assert!(builder().source(only_limits()).check().is_err()); // `greeting` is missing
    /// assert!(builder().source(only_limits()).check_partial().is_ok());
    /// ```
    pub fn check_partial(mut self) -> Result<(), Errors> {
        let document = source::load_layers(&self.sources)
            .and_then(source::merge)
            .map(|merged| merged.document);
        if let Ok(document) = document {
            let empty = serde_json::Value::Object(serde_json::Map::new());
            let absent: Vec<TypeId> = self
                .specs
                .iter()
                .filter(|s| document.pointer(&s.pointer).is_none() && s.build(&empty).is_err())
                .map(|s| s.type_id)
                .collect();
            if !absent.is_empty() {
                let kept: Vec<bool> = self
                    .specs
                    .iter()
                    .map(|s| !absent.contains(&s.type_id))
                    .collect();
                let mut keep = kept.iter().copied();
                self.specs.retain(|_| keep.next().unwrap_or(true));
                let mut keep = kept.iter().copied();
                self.cells.retain(|_| keep.next().unwrap_or(true));
                self.resolvers
                    .retain(|r| r.inputs().iter().all(|(id, _)| !absent.contains(id)));
                self.hooks.clear();
            }
        }
        self.check()
    }

    /// The JSON Schema (draft-07) of every registered section, nested at its path: the
    /// document that editors' language servers read to check and complete a config file
    /// (`# yaml-language-server: $schema=…`, `#:schema …` in TOML, `"$schema"` in JSON).
    pub fn json_schema(&self) -> serde_json::Value {
        crate::schema::export(&self.specs, self.allow_unknown_keys)
    }

    fn build_inner(mut self, started: Instant) -> Result<Publisher, Errors> {
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
        let restarts: Arc<[String]> = self
            .specs
            .iter()
            .flat_map(|s| s.restarts.iter().cloned())
            .collect();
        let keys = Arc::new(Keys::new(
            self.specs.iter().map(|s| s.keys.clone()).collect(),
            self.allow_unknown_keys,
        ));
        // Env overlays read from here on map only onto these keys.
        let _ = self.keys.set(Arc::clone(&keys));
        let last = history.last().cloned();
        let prepare_checked = |scoped, hash, version, origin| {
            publish::prepare(&self.specs, &secrets, &keys, scoped, hash, version, origin).check(
                &self.resolvers,
                None,
                &self.hooks,
            )
        };

        let read_sources = |read: &mut Option<u64>| {
            source::load_layers(&self.sources)
                .and_then(|layers| {
                    *read = Some(source::fingerprint(&layers));
                    publish::scope(layers, &keys, false)
                })
                .map_err(publish::into_errors)
                .and_then(|scoped| {
                    let hash = scoped.hash();
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
            origin: snapshot.origin.clone(),
            last_reload: None,
            last_rejection: None,
            pending: None,
            differs_from_sources: false,
            restart_needed: Vec::new(),
            held_back: Vec::new(),
            history_store: None,
            sources: Vec::new(),
            resolvers: Vec::new(),
            canary: None,
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
        Ok(Publisher {
            started_on: Arc::clone(&snapshot.document),
            current: ArcSwap::new(snapshot),
            specs: self.specs.into_boxed_slice(),
            secrets,
            restarts,
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
            canary: crate::publish::CanarySlot::default(),
            meter: crate::canary::MeterSlot::default(),
            release_control: std::sync::Mutex::new(None),
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
