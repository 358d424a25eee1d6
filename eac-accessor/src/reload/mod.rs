//! Reload coordination: one place that turns triggers into publishes.
//!
//! A [`ReloadCoordinator`] runs the accessor's pipeline for every trigger — a manual
//! [`refresh`](ReloadCoordinator::refresh), a [`FileWatcher`], a poller, an operator's
//! [`rollback_to`](ReloadCoordinator::rollback_to) — with:
//!
//! - **single flight**: concurrent triggers join the run under way and all get its result;
//! - a **cooldown** after each publish, during which a refresh that is not forced is
//!   refused ([`ErrorKind::Throttled`]) and a file change waits;
//! - **no trigger lost**: a refresh that comes while a run reads gets a run of its own
//!   that reads after it — it waits out the cooldown that run sets, and when that run
//!   fails, it is answered [`ErrorKind::Throttled`] and runs by itself once the backoff
//!   ends;
//! - **exponential backoff with full jitter** after rejected runs (base, doubled per
//!   failure up to a ceiling, then a random wait in `[0, that]`);
//! - a **build timeout**: a run still reading its sources when it expires publishes
//!   nothing and reports [`ErrorKind::Timeout`];
//! - **health checks** after each publish: when one fails within the window, the
//!   previous version is republished (origin `auto-rollback`) and the refresh reports why.
//!
//! Every task it starts ([`FileWatcher`]s, pollers) stops on
//! [`shutdown`](ReloadCoordinator::shutdown); a `FileWatcher` also stops when dropped.
//!
//! ```no_run
//! use eac_accessor::{EaCAccessor, Origin, source::Dir};
//! use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let accessor = EaCAccessor::builder().source(Dir::new("/etc/app")).build()?;
//! let reloads = ReloadCoordinator::new(accessor, ReloadConfig::from_env()?);
//! let _watcher = reloads.watch_dir("/etc/app")?;   // live within a second of a save, until dropped
//! let outcome = reloads.refresh(Origin::Refresh, false).await?; // or on demand
//! reloads.shutdown().await;
//! # Ok(()) }
//! ```

mod canary;
mod config;
mod flight;
mod health;
#[cfg(feature = "http")]
mod poll;
mod throttle;
mod watch;

pub use config::{ReloadConfig, ReloadMode};
#[cfg(feature = "http")]
pub use poll::PollConfig;
pub use watch::{FileWatcher, WatchStatus};

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::accessor::EaCAccessor;
use crate::error::{Error, ErrorKind, Errors};
use crate::publish::{Candidate, Outcome, Preview};
use crate::snapshot::{Origin, Snapshot};
use crate::sync::lock;
use flight::{Abandoned, Flight};
use health::HealthChecks;
use throttle::{Hold, Throttle};

/// Turns triggers into publishes, one run at a time; see the [module docs](self).
#[derive(Clone)]
pub struct ReloadCoordinator {
    inner: Arc<Coordinator>,
}

struct Coordinator {
    accessor: EaCAccessor,
    config: ReloadConfig,
    inflight: Mutex<Option<Flight>>,
    generation: AtomicU64,
    runs: AtomicU64,
    throttle: Mutex<Throttle>,
    checks: HealthChecks,
    tasks: Mutex<Vec<watch::Stopper>>,
    /// A run abandoned at the build timeout whose read has not returned yet.
    abandoned: Mutex<Abandoned>,
    /// Set by [`ReloadCoordinator::shutdown`]: a run still building commits nothing.
    closed: Arc<AtomicBool>,
    /// A reload owed to a trigger that a backoff held back; see `defer`.
    deferred: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The remote documents polled: a forced refresh fetches them again first.
    #[cfg(feature = "http")]
    polled: Mutex<Vec<crate::source::Http>>,
    /// The guard of the running canary: its version and task.
    canary_guard: Mutex<Option<(u64, tokio::task::JoinHandle<()>)>>,
}

/// What [`ReloadCoordinator::trigger`] did with a detected change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Triggered {
    /// In [`ReloadMode::Auto`]: the reload ran; here is what it did.
    Reloaded(Outcome),
    /// In [`ReloadMode::Manual`]: the change was validated and kept as pending (or,
    /// when it is invalid, as a rejection); nothing was published.
    Pending(Preview),
}

impl ReloadCoordinator {
    /// A coordinator for `accessor` with `config`'s timings.
    pub fn new(accessor: EaCAccessor, config: ReloadConfig) -> ReloadCoordinator {
        let throttle = Mutex::new(Throttle::new(&config));
        ReloadCoordinator {
            inner: Arc::new(Coordinator {
                accessor,
                config,
                inflight: Mutex::new(None),
                generation: AtomicU64::new(0),
                runs: AtomicU64::new(0),
                throttle,
                checks: HealthChecks::default(),
                tasks: Mutex::new(Vec::new()),
                abandoned: Mutex::new(Abandoned::default()),
                closed: Arc::new(AtomicBool::new(false)),
                deferred: Mutex::new(None),
                #[cfg(feature = "http")]
                polled: Mutex::new(Vec::new()),
                canary_guard: Mutex::new(None),
            }),
        }
    }

    /// Adds a health check, run against each newly published snapshot; when any fails
    /// (or takes longer than the health window), the previous version is republished.
    pub fn health_check<F, Fut>(&self, name: impl Into<String>, check: F) -> &Self
    where
        F: Fn(Arc<Snapshot>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.inner.checks.add(name.into(), check);
        self
    }

    /// The accessor this coordinator publishes to.
    pub fn accessor(&self) -> &EaCAccessor {
        &self.inner.accessor
    }

    /// The timings in force.
    pub fn config(&self) -> &ReloadConfig {
        &self.inner.config
    }

    /// How many pipeline runs this coordinator has started (joined triggers count once).
    pub fn runs(&self) -> u64 {
        self.inner.runs.load(Ordering::Relaxed)
    }

    /// Reloads now, or joins a run that has not begun reading its sources yet (so the
    /// result always reflects what the sources held when this was called). `force`
    /// skips the cooldown and backoff, and first fetches every polled remote document
    /// again without conditions ([`refetch`](Self::refetch)). Publishes in either
    /// [`ReloadMode`].
    ///
    /// Returns the run's outcome; [`ErrorKind::Throttled`] when not forced during a
    /// cooldown or backoff (a refresh that came while a run read waits out the cooldown
    /// that run set, and is run by itself after a backoff it set); [`ErrorKind::Timeout`] past the build timeout;
    /// [`ErrorKind::HealthCheck`] when a health check failed and the previous version
    /// was put back. A refresh refused because a run abandoned at the build timeout is
    /// still reading is not lost: it runs by itself as soon as that read returns.
    pub async fn refresh(&self, origin: Origin, force: bool) -> Result<Outcome, Errors> {
        if force {
            self.refetch().await;
        }
        // Whether this trigger came while a run was reading: it is owed a run whose
        // reads start after it, which the throttle that run set must not refuse.
        let mut queued = false;
        loop {
            if queued && !force {
                let hold = lock(&self.inner.throttle).wait(&self.inner.config, Instant::now());
                match hold {
                    // The run it waited for published: its cooldown is short, wait it out.
                    Some((wait, Hold::Cooldown)) => tokio::time::sleep(wait).await,
                    // It failed: the caller is not held for a backoff, but the run is
                    // owed, and starts when the backoff ends.
                    Some((wait, Hold::Backoff)) => {
                        self.defer(origin);
                        return Err(Error::new(
                            ErrorKind::Throttled,
                            format!(
                                "{}: this reload runs by itself in {} ms (or force it)",
                                Hold::Backoff.why(),
                                wait.as_millis().max(1)
                            ),
                        )
                        .into());
                    }
                    None => {}
                }
            }
            let (run, ours) = {
                let mut inflight = lock(&self.inner.inflight);
                match &*inflight {
                    // A run that has read nothing yet answers for this trigger too.
                    Some(f) => (
                        f.run.clone(),
                        !f.reading.load(Ordering::SeqCst) && (f.forced || !force),
                    ),
                    None => {
                        let flight = self.start(origin.clone(), force);
                        let run = flight.run.clone();
                        *inflight = Some(flight);
                        (run, true)
                    }
                }
            };
            let result = run.await;
            if ours {
                return result;
            }
            // That run read before this trigger: wait for it, then run anew.
            queued = true;
        }
    }

    /// Fetches every remote document this coordinator polls again, at once and without
    /// conditions (no `If-None-Match`, no `If-Modified-Since`), each within its timeout:
    /// what a forced refresh and `live_server`'s SIGHUP do before reading the sources,
    /// so that they serve what the servers hold now, not what the last poll found. They
    /// are fetched together, and a source that is down is skipped (its poller goes on
    /// trying): an outage never delays a refresh by more than one fetch's timeout. A
    /// failed fetch leaves the document fetched last (and says so in the source's
    /// status). Does nothing without polled sources.
    pub async fn refetch(&self) {
        #[cfg(feature = "http")]
        {
            use crate::source::Source;
            // At once, and not from a source that is down: an outage must not delay the
            // refresh (its poller goes on trying).
            let polled: Vec<_> = lock(&self.inner.polled)
                .iter()
                .filter(|s| s.status().is_some_and(|s| s.up))
                .cloned()
                .collect();
            let fetches = polled.iter().map(|source| async move {
                if let Err(error) = source.refetch().await {
                    tracing::warn!(source = %source.url(), %error, "a forced refresh could not fetch the remote document; using the one fetched last");
                }
            });
            futures_util::future::join_all(fetches).await;
        }
    }

    /// Runs a reload for `origin` once the throttle allows, on its own task; one at a
    /// time (a deferred run not yet started reads after every trigger deferred to it).
    fn defer(&self, origin: Origin) {
        let mut deferred = lock(&self.inner.deferred);
        if deferred.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let coordinator = self.clone();
        *deferred = Some(tokio::spawn(async move {
            if let Err(errors) = coordinator.refresh_when_allowed(origin).await {
                tracing::warn!(%errors, "a deferred reload failed");
            }
        }));
    }

    /// A change was detected (a file event, a poll, a signal): in [`ReloadMode::Auto`],
    /// a reload that waits out a cooldown or backoff instead of failing; in
    /// [`ReloadMode::Manual`], a dry run whose result is kept as the pending change in
    /// the [`Status`](crate::Status) (or as a rejection), publishing nothing.
    pub async fn trigger(&self, origin: Origin) -> Result<Triggered, Errors> {
        match self.inner.config.mode {
            ReloadMode::Auto | ReloadMode::Canary => self
                .refresh_when_allowed(origin)
                .await
                .map(Triggered::Reloaded),
            ReloadMode::Manual => {
                let publisher = Arc::clone(&self.inner.accessor.publisher);
                let preview = tokio::task::spawn_blocking(move || {
                    let preview = publisher.preview(Candidate::Sources);
                    publisher.keep_pending(origin, &preview).map(|()| preview)
                })
                .await
                .unwrap_or_else(|e| {
                    Err(Error::new(ErrorKind::Io, format!("the dry run failed: {e}")).into())
                })?;
                Ok(Triggered::Pending(preview))
            }
        }
    }

    /// Republishes kept version `version` as a new version, like
    /// [`EaCAccessor::rollback_to`], in turn with this coordinator's runs: after the run
    /// under way (so that the rollback is not undone by it; a trigger that comes later
    /// reloads what the sources say, as after any rollback), never after
    /// [`shutdown`](ReloadCoordinator::shutdown), and starting the cooldown a publish
    /// starts. An operator's call: it is never throttled.
    pub async fn rollback_to(&self, version: u64) -> Result<Outcome, Errors> {
        let under_way = lock(&self.inner.inflight).as_ref().map(|f| f.run.clone());
        if let Some(run) = under_way {
            let _ = run.await;
        }
        if self.inner.closed.load(Ordering::SeqCst) || lock(&self.inner.abandoned).reading {
            return Err(Error::new(
                ErrorKind::Timeout,
                "the rollback was called off (its coordinator shut down, or a reload abandoned \
                 at the build timeout is still reading its sources); nothing was published",
            )
            .into());
        }
        let accessor = self.inner.accessor.clone();
        let result = tokio::task::spawn_blocking(move || accessor.rollback_to(version))
            .await
            .unwrap_or_else(|e| {
                Err(Error::new(ErrorKind::Io, format!("the rollback task failed: {e}")).into())
            });
        if result.as_ref().is_ok_and(Outcome::is_published) {
            lock(&self.inner.throttle).last_publish = Some(Instant::now());
        }
        result
    }

    /// How long a refresh that is not forced would have to wait now, if at all.
    pub fn throttled_for(&self) -> Option<Duration> {
        lock(&self.inner.throttle)
            .wait(&self.inner.config, Instant::now())
            .map(|(d, _)| d)
    }

    /// Watches a configuration folder and reloads after each change, debounced, until the
    /// returned [`FileWatcher`] is dropped (or stopped, or this coordinator shut down).
    /// Needs a Tokio runtime.
    pub fn watch_dir(&self, dir: impl AsRef<Path>) -> Result<FileWatcher, Error> {
        let (watcher, stopper) = watch::start(self.clone(), dir.as_ref())?;
        let mut tasks = lock(&self.inner.tasks);
        // The tasks of watchers dropped since: nothing left to stop.
        tasks.retain(|task| !task.is_finished());
        tasks.push(stopper);
        Ok(watcher)
    }

    /// Stops every task this coordinator started and waits for them to end. A run still
    /// building publishes nothing from now on (its blocking read is not waited for), nor
    /// does any later one: the process can exit within its grace.
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let tasks: Vec<_> = lock(&self.inner.tasks).drain(..).collect();
        for task in tasks {
            task.stop().await;
        }
        let reaper = lock(&self.inner.abandoned).reaper.take();
        let deferred = lock(&self.inner.deferred).take();
        for task in [reaper, deferred].into_iter().flatten() {
            task.abort();
            let _ = task.await;
        }
    }

    /// A refresh that waits out a cooldown or backoff instead of failing.
    async fn refresh_when_allowed(&self, origin: Origin) -> Result<Outcome, Errors> {
        loop {
            match self.throttled_for() {
                Some(wait) => tokio::time::sleep(wait).await,
                None => {
                    let result = self.refresh(origin.clone(), false).await;
                    match &result {
                        Err(errors) if errors.has(ErrorKind::Throttled) => continue,
                        _ => return result,
                    }
                }
            }
        }
    }
}

impl Coordinator {
    async fn run(
        self: &Arc<Self>,
        origin: Origin,
        force: bool,
        reading: Arc<AtomicBool>,
    ) -> Result<Outcome, Errors> {
        if !force {
            let wait = lock(&self.throttle).wait(&self.config, Instant::now());
            if let Some((wait, hold)) = wait {
                return Err(Error::new(
                    ErrorKind::Throttled,
                    format!(
                        "{}: next reload allowed in {} ms (or force it)",
                        hold.why(),
                        wait.as_millis().max(1)
                    ),
                )
                .into());
            }
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        let previous = self.accessor.load_full();
        let result = self.build(origin, reading).await;
        lock(&self.throttle).record(&result, Instant::now());
        match result {
            Ok(outcome @ Outcome::Canary { .. }) => {
                self.guard_canary();
                Ok(outcome)
            }
            Ok(Outcome::Published { snapshot, changed }) => {
                match self.checks.run(&snapshot, self.config.health_window).await {
                    Ok(()) => Ok(Outcome::Published { snapshot, changed }),
                    Err(why) => Err(health::auto_rollback(
                        &self.accessor,
                        previous,
                        snapshot.version(),
                        why,
                    )
                    .await),
                }
            }
            other => other,
        }
    }
}

impl std::fmt::Debug for ReloadCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadCoordinator")
            .field("config", &self.inner.config)
            .field("runs", &self.runs())
            .finish_non_exhaustive()
    }
}
