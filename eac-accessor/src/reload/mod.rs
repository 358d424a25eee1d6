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

#[cfg(feature = "http")]
mod poll;
mod watch;

#[cfg(feature = "http")]
pub use poll::PollConfig;
pub use watch::{FileWatcher, WatchStatus};

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Shared;
use tokio::time::Instant;

use crate::accessor::EaCAccessor;
use crate::error::{Error, ErrorKind, Errors};
use crate::publish::{Candidate, Outcome, Preview};
use crate::snapshot::{Origin, Snapshot};

/// Timings of a [`ReloadCoordinator`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadConfig {
    /// The least time between two publishes unless forced (default 250 ms).
    pub cooldown: Duration,
    /// The first backoff after a rejected run, doubled per further failure (default 100 ms).
    pub backoff: Duration,
    /// The longest backoff (default 5 s).
    pub backoff_max: Duration,
    /// How long a run may take before it is abandoned (default 10 s).
    pub build_timeout: Duration,
    /// How long file events must be quiet before a reload (default 100 ms).
    pub debounce: Duration,
    /// The longest a change waits for the events to go quiet (default 1 s): a file
    /// rewritten without pause is still reloaded this long after the first event, and
    /// the debounce starts again.
    pub max_wait: Duration,
    /// Whether a detected change is published at once or waits for an operator
    /// (default [`ReloadMode::Auto`]).
    pub mode: ReloadMode,
    /// How long health checks may take after a publish (default 5 s).
    pub health_window: Duration,
    /// Poll watched folders at this interval instead of asking the OS for events
    /// (default: events; for network file systems where events do not arrive). Watching
    /// falls back to polling on its own when events cannot be had.
    pub poll_interval: Option<Duration>,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            cooldown: Duration::from_millis(250),
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            build_timeout: Duration::from_secs(10),
            debounce: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
            mode: ReloadMode::Auto,
            health_window: Duration::from_secs(5),
            poll_interval: None,
        }
    }
}

/// The variable that sets the [`ReloadMode`].
const MODE_ENV: &str = "EAC_RELOAD_MODE";

/// Whether a detected change (a file event, a poll, a signal) is published at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadMode {
    /// A change is validated and published at once (the default).
    #[default]
    Auto,
    /// A change is validated and shown as pending (in the status, with its diff, and as
    /// an [`Event::Pending`](crate::Event::Pending)), and published only by an explicit
    /// [`ReloadCoordinator::refresh`] (the admin's `POST refresh`).
    Manual,
}

impl std::str::FromStr for ReloadMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<ReloadMode, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(ReloadMode::Auto),
            "manual" => Ok(ReloadMode::Manual),
            _ => Err(Error::new(
                ErrorKind::Parse,
                "expected a reload mode: `auto` or `manual`",
            )),
        }
    }
}

impl std::fmt::Display for ReloadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReloadMode::Auto => "auto",
            ReloadMode::Manual => "manual",
        })
    }
}

/// The longest time an environment toggle may set: a day.
const MAX_MS: u64 = 86_400_000;

/// `now + d`, or far in the future when that does not fit an `Instant`.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

impl ReloadConfig {
    /// The defaults, overridden by `EAC_REFRESH_COOLDOWN_MS`, `EAC_REFRESH_BACKOFF_MS`,
    /// `EAC_REFRESH_BUILD_TIMEOUT_MS`, `EAC_WATCH_DEBOUNCE_MS`, `EAC_WATCH_MAX_WAIT_MS`
    /// (whole milliseconds) and `EAC_RELOAD_MODE` (`auto` or `manual`).
    ///
    /// A variable that is set but not a whole number (or not a mode) is an error naming it.
    pub fn from_env() -> Result<ReloadConfig, Error> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](ReloadConfig::from_env), reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<ReloadConfig, Error> {
        let mut config = ReloadConfig::default();
        let mut errors = Vec::new();
        for (name, slot) in [
            ("EAC_REFRESH_COOLDOWN_MS", &mut config.cooldown),
            ("EAC_REFRESH_BACKOFF_MS", &mut config.backoff),
            ("EAC_REFRESH_BUILD_TIMEOUT_MS", &mut config.build_timeout),
            ("EAC_WATCH_DEBOUNCE_MS", &mut config.debounce),
            ("EAC_WATCH_MAX_WAIT_MS", &mut config.max_wait),
        ] {
            if let Some(value) = var(name) {
                match value.trim().parse::<u64>() {
                    Ok(ms) if ms <= MAX_MS => *slot = Duration::from_millis(ms),
                    _ => errors.push(name),
                }
            }
        }
        if let Some(value) = var(MODE_ENV) {
            config.mode = value.parse().map_err(|e: Error| {
                e.with_source(crate::SourceName::EnvVar(MODE_ENV.to_owned()))
            })?;
        }
        match errors.first() {
            None => Ok(config),
            Some(name) => Err(Error::new(
                ErrorKind::Parse,
                format!("expected a whole number of milliseconds, at most {MAX_MS} (a day)"),
            )
            .with_source(crate::SourceName::EnvVar((*name).to_owned()))),
        }
    }
}

type RunFuture = Shared<Pin<Box<dyn Future<Output = Result<Outcome, Errors>> + Send>>>;

/// The run under way: its number, whether it skips throttling, whether it has begun
/// reading its sources, and its shared result.
struct Flight {
    generation: u64,
    forced: bool,
    reading: Arc<AtomicBool>,
    run: RunFuture,
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
type HealthCheck = Arc<
    dyn Fn(Arc<Snapshot>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

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
    checks: Mutex<Vec<(String, HealthCheck)>>,
    tasks: Mutex<Vec<watch::Stopper>>,
    /// A run abandoned at the build timeout whose read has not returned yet.
    abandoned: Mutex<Abandoned>,
    /// Set by [`ReloadCoordinator::shutdown`]: a run still building commits nothing.
    closed: Arc<AtomicBool>,
    /// A reload owed to a trigger that a backoff held back; see `defer`.
    deferred: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A run abandoned at the build timeout, while its blocking read goes on.
#[derive(Default)]
struct Abandoned {
    /// Whether that read is still going on.
    reading: bool,
    /// The trigger refused meanwhile, run once the read returns.
    retry: Option<Origin>,
    /// The task that waits for the read and then runs `retry`.
    reaper: Option<tokio::task::JoinHandle<()>>,
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

#[derive(Debug, Default)]
struct Throttle {
    last_publish: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
    seed: u64,
}

/// Why a run that is not forced must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Failed runs: an exponential backoff.
    Backoff,
    /// A publish: the cooldown after it.
    Cooldown,
}

impl Hold {
    fn why(self) -> &'static str {
        match self {
            Hold::Backoff => "backing off after failed reloads",
            Hold::Cooldown => "cooling down after the last publish",
        }
    }
}

impl Throttle {
    /// How long a run that is not forced must still wait, and why.
    fn wait(&self, config: &ReloadConfig, now: Instant) -> Option<(Duration, Hold)> {
        if let Some(at) = self.retry_at.filter(|at| *at > now) {
            return Some((at - now, Hold::Backoff));
        }
        let until = later(self.last_publish?, config.cooldown);
        (until > now).then(|| (until - now, Hold::Cooldown))
    }

    fn record(&mut self, config: &ReloadConfig, result: &Result<Outcome, Errors>, now: Instant) {
        match result {
            Ok(outcome) => {
                if outcome.is_published() {
                    self.last_publish = Some(now);
                }
                self.failures = 0;
                self.retry_at = None;
            }
            Err(errors) if errors.has(ErrorKind::Throttled) => {}
            Err(_) => {
                self.failures = self.failures.saturating_add(1);
                let ceiling = config
                    .backoff
                    .saturating_mul(1 << self.failures.saturating_sub(1).min(20))
                    .min(config.backoff_max);
                // Full jitter: a uniform wait in [0, ceiling].
                let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
                let wait = if nanos == 0 {
                    0
                } else {
                    self.next_random() % (nanos + 1)
                };
                self.retry_at = Some(later(now, Duration::from_nanos(wait)));
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64, seeded from the clock: jitter only needs to differ between processes.
        if self.seed == 0 {
            self.seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
                | 1;
        }
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl ReloadCoordinator {
    /// A coordinator for `accessor` with `config`'s timings.
    pub fn new(accessor: EaCAccessor, config: ReloadConfig) -> ReloadCoordinator {
        ReloadCoordinator {
            inner: Arc::new(Coordinator {
                accessor,
                config,
                inflight: Mutex::new(None),
                generation: AtomicU64::new(0),
                runs: AtomicU64::new(0),
                throttle: Mutex::new(Throttle::default()),
                checks: Mutex::new(Vec::new()),
                tasks: Mutex::new(Vec::new()),
                abandoned: Mutex::new(Abandoned::default()),
                closed: Arc::new(AtomicBool::new(false)),
                deferred: Mutex::new(None),
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
        let check: HealthCheck = Arc::new(move |s| Box::pin(check(s)));
        lock(&self.inner.checks).push((name.into(), check));
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
    /// skips the cooldown and backoff. Publishes in either [`ReloadMode`].
    ///
    /// Returns the run's outcome; [`ErrorKind::Throttled`] when not forced during a
    /// cooldown or backoff (a refresh that came while a run read waits out the cooldown
    /// that run set, and is run by itself after a backoff it set); [`ErrorKind::Timeout`] past the build timeout;
    /// [`ErrorKind::HealthCheck`] when a health check failed and the previous version
    /// was put back. A refresh refused because a run abandoned at the build timeout is
    /// still reading is not lost: it runs by itself as soon as that read returns.
    pub async fn refresh(&self, origin: Origin, force: bool) -> Result<Outcome, Errors> {
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
            ReloadMode::Auto => self
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

    fn start(&self, origin: Origin, force: bool) -> Flight {
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
        lock(&self.throttle).record(&self.config, &result, Instant::now());
        match result {
            Ok(Outcome::Published { snapshot, changed }) => {
                match self.check_health(&snapshot).await {
                    Ok(()) => Ok(Outcome::Published { snapshot, changed }),
                    Err(why) => Err(self.auto_rollback(previous, snapshot.version(), why).await),
                }
            }
            other => other,
        }
    }

    /// Runs the pipeline on a blocking thread, within the build timeout.
    async fn build(
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
        let mut task = tokio::task::spawn_blocking(move || {
            reading.store(true, Ordering::SeqCst);
            publisher.reload(origin, &|| {
                let mut d = lock(&commit);
                if *d == Decision::Abandoned || closed.load(Ordering::SeqCst) {
                    false
                } else {
                    *d = Decision::Committed;
                    true
                }
            })
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

    async fn check_health(&self, snapshot: &Arc<Snapshot>) -> Result<(), String> {
        let checks: Vec<_> = lock(&self.checks).clone();
        for (name, check) in checks {
            let check = AssertUnwindSafe(check(Arc::clone(snapshot))).catch_unwind();
            match tokio::time::timeout(self.config.health_window, check).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(why))) => return Err(format!("health check `{name}` failed: {why}")),
                Ok(Err(_)) => return Err(format!("health check `{name}` panicked")),
                Err(_) => {
                    return Err(format!(
                        "health check `{name}` did not pass within {} ms",
                        self.config.health_window.as_millis()
                    ));
                }
            }
        }
        Ok(())
    }

    async fn auto_rollback(&self, previous: Arc<Snapshot>, failed: u64, why: String) -> Errors {
        let publisher = Arc::clone(&self.accessor.publisher);
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
        self.accessor
            .publisher
            .reject(&Origin::AutoRollback { from: previous }, &errors, None);
        errors
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Open,
    Committed,
    Abandoned,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for ReloadCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadCoordinator")
            .field("config", &self.inner.config)
            .field("runs", &self.runs())
            .finish_non_exhaustive()
    }
}
