//! Polling a remote document through the coordinator: an interval with jitter, and
//! exponential backoff with full jitter after errors, per source.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use super::{ReloadCoordinator, lock, watch::Stopper};
use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::settings::{EnvSettings, millis};
use crate::snapshot::Origin;
use crate::source::{Fetched, Http, Source};

/// When a remote source is polled: every `interval`, give or take `jitter`, and less
/// often after errors.
///
/// - After a fetch that worked, the next one comes after a uniform random wait in
///   `interval × [1 − jitter, 1 + jitter]`, so a fleet started together does not poll
///   in step.
/// - After `n` failed fetches in a row, the wait is uniform in
///   `[interval × (1 − jitter), min(interval × 2ⁿ, backoff_max)]` (full jitter above
///   the normal floor): an erroring or refusing server is never asked more often than
///   a healthy one.
/// - A fetch that brings a new document waits for the reload it triggers (which honours
///   the coordinator's cooldown) before the next wait starts, so a server that answers
///   at once and always differently still sees a bounded request rate.
///
/// ```
/// use std::time::Duration;
/// use eac_accessor::reload::PollConfig;
///
/// let config = PollConfig::from_vars(|name| match name {
///     "EAC_REFRESH_POLL_INTERVAL_MS" => Some("5000".into()),
///     "EAC_REFRESH_POLL_JITTER_PCT" => Some("0.1".into()),
///     _ => None,
/// })?;
/// assert_eq!(config.interval, Duration::from_secs(5));
/// assert_eq!(config.jitter, 0.1);
/// assert!(PollConfig::default().enabled());
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PollConfig {
    /// The time between two polls (default 30 s); zero disables polling.
    pub interval: Duration,
    /// The fraction of the interval each wait may be shorter or longer (0.0–0.9,
    /// default 0.2).
    pub jitter: f64,
    /// The longest wait after errors (default 5 minutes, never less than the interval).
    pub backoff_max: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: Duration::from_secs(30),
            jitter: 0.2,
            backoff_max: Duration::from_secs(300),
        }
    }
}

const INTERVAL_ENV: &str = "EAC_REFRESH_POLL_INTERVAL_MS";
const JITTER_ENV: &str = "EAC_REFRESH_POLL_JITTER_PCT";

/// The shortest wait between two polls, whatever the interval says.
const MIN_WAIT: Duration = Duration::from_millis(1);

impl PollConfig {
    /// Polls every `interval`, with the default jitter and backoff.
    pub fn every(interval: Duration) -> PollConfig {
        PollConfig {
            interval,
            ..PollConfig::default()
        }
    }

    /// Sets the jitter, clamped to 0.0–0.9.
    pub fn jitter(mut self, jitter: f64) -> PollConfig {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 0.9)
        } else {
            0.0
        };
        self
    }

    /// Whether polling is on (a non-zero interval).
    pub fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    /// The defaults, overridden by `EAC_REFRESH_POLL_INTERVAL_MS` (whole milliseconds,
    /// 0 disables) and `EAC_REFRESH_POLL_JITTER_PCT` (a fraction, 0.0–0.9).
    ///
    /// A variable that is set but out of range is an error naming it, its value and
    /// what was expected; every such variable is reported. A blank variable counts as
    /// unset. Read through [`EnvSettings`].
    pub fn from_env() -> Result<PollConfig, Errors> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](PollConfig::from_env), reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<PollConfig, Errors> {
        let mut env = EnvSettings::from_vars(var);
        let mut config = PollConfig::default();
        let interval = env.parse(INTERVAL_ENV, |v| {
            millis(v).map_err(|e| format!("{}; 0 disables polling", e.message()))
        });
        if let Some(interval) = interval {
            config.interval = interval;
        }
        let jitter = env.parse(JITTER_ENV, |v| match v.parse::<f64>() {
            Ok(j) if (0.0..=0.9).contains(&j) => Ok(j),
            _ => Err("a fraction from 0.0 to 0.9 (0.2 is ±20%)"),
        });
        if let Some(jitter) = jitter {
            config.jitter = jitter;
        }
        env.finish(config)
    }
}

/// The waits between polls: interval with jitter, backoff with full jitter after errors.
#[derive(Debug)]
pub(crate) struct Schedule {
    config: PollConfig,
    /// Steps of `interval × 2ⁿ` after `n` failures, up to the longest wait.
    backoff: Backoff,
}

impl Schedule {
    pub(crate) fn new(config: PollConfig, seed: u64) -> Schedule {
        let backoff = Backoff::with_seed(
            config.interval.saturating_mul(2),
            config.backoff_max.max(config.interval),
            seed,
        );
        Schedule { config, backoff }
    }

    /// The wait before the next poll, after one that worked (`ok`) or failed.
    pub(crate) fn next(&mut self, ok: bool) -> Duration {
        let interval = self.config.interval;
        let jitter = self.config.jitter.clamp(0.0, 0.9);
        let floor = interval.mul_f64(1.0 - jitter);
        let wait = if ok {
            self.backoff.reset();
            self.backoff.between(floor, interval.mul_f64(1.0 + jitter))
        } else {
            let ceiling = self.backoff.fail();
            self.backoff.between(floor, ceiling)
        };
        wait.max(MIN_WAIT)
    }
}

/// Polls with `poll` (which says whether it worked) on `schedule` until `stop` says so.
pub(crate) async fn run<F, Fut>(
    mut schedule: Schedule,
    mut stop: watch::Receiver<bool>,
    mut ok: bool,
    mut poll: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = schedule.next(ok);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        tokio::select! {
            worked = poll() => ok = worked,
            _ = stop.changed() => return,
        }
    }
}

impl ReloadCoordinator {
    /// Polls `source` in the background: each fetch that brings a new document triggers
    /// a reload through this coordinator (origin [`Origin::Poll`]), in either
    /// [`ReloadMode`](super::ReloadMode); a `304` does nothing more. State changes of the
    /// source (reached, lost, serving its cache or not) are sent as
    /// [`Event::Source`](crate::Event::Source). Stops on [`shutdown`](Self::shutdown).
    ///
    /// Does nothing when `config` disables polling. Needs a Tokio runtime.
    ///
    /// ```no_run
    /// # use eac_accessor::{EaCAccessor, source::Http};
    /// # use eac_accessor::reload::{PollConfig, ReloadConfig, ReloadCoordinator};
    /// # async fn run(accessor: EaCAccessor, remote: Http) -> Result<(), eac_accessor::Error> {
    /// let reloads = ReloadCoordinator::new(accessor, ReloadConfig::default());
    /// reloads.poll(&remote, PollConfig::every(std::time::Duration::from_secs(10)))?;
    /// // …
    /// reloads.shutdown().await; // stops the poller
    /// # Ok(()) }
    /// ```
    pub fn poll(&self, source: &Http, config: PollConfig) -> Result<(), Error> {
        if !config.enabled() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Io,
                "polling needs a Tokio runtime: call poll inside one",
            )
            .with_source(SourceName::Url(source.url().to_owned()))
        })?;
        lock(&self.inner.polled).push(source.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let coordinator = self.clone();
        let source = source.clone();
        let state = |s: &Http| s.status().map(|s| (s.up, s.serving_cache));
        let mut told = Some((true, false));
        let mut tell = move |source: &Http, coordinator: &ReloadCoordinator| {
            let now = state(source);
            if now != told {
                told = now;
                if let Some(status) = source.status() {
                    coordinator.accessor().publisher.source_changed(status);
                }
            }
        };
        tell(&source, &coordinator);
        let first_ok = source.status().is_some_and(|s| s.up);
        let tell = std::sync::Arc::new(std::sync::Mutex::new(tell));
        let task = runtime.spawn(run(
            Schedule::new(config, fastrand::u64(..)),
            stop_rx,
            first_ok,
            move || {
                let source = source.clone();
                let coordinator = coordinator.clone();
                let tell = std::sync::Arc::clone(&tell);
                async move {
                    let fetched = source.fetch().await;
                    if let Ok(Fetched::Modified) = fetched {
                        let origin = Origin::Poll {
                            url: source.url().to_owned(),
                        };
                        if let Err(errors) = coordinator.trigger(origin).await {
                            tracing::warn!(source = %source.url(), %errors, "the polled document was not published");
                        }
                    }
                    (lock(&tell))(&source, &coordinator);
                    fetched.is_ok()
                }
            },
        ));
        lock(&self.inner.tasks).push(Stopper::new(stop_tx, task));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    fn config(interval_ms: u64, jitter: f64) -> PollConfig {
        PollConfig {
            interval: Duration::from_millis(interval_ms),
            jitter,
            backoff_max: Duration::from_millis(interval_ms * 16),
        }
    }

    /// Drives the real poll loop on tokio's paused clock, with polls that succeed or
    /// fail as `script` says, and returns the time of each poll from the start.
    async fn polls(config: PollConfig, script: Vec<bool>) -> Vec<Duration> {
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let script = Arc::new(Mutex::new(script.into_iter()));
        let seen = Arc::clone(&times);
        let stop = stop_tx.clone();
        run(Schedule::new(config, 42), stop_rx, true, move || {
            let seen = Arc::clone(&seen);
            let script = Arc::clone(&script);
            let stop = stop.clone();
            async move {
                seen.lock().unwrap().push(start.elapsed());
                match script.lock().unwrap().next() {
                    Some(ok) => ok,
                    None => {
                        let _ = stop.send(true);
                        true
                    }
                }
            }
        })
        .await;
        times.lock().unwrap().clone()
    }

    fn gaps(times: &[Duration]) -> Vec<Duration> {
        let mut last = Duration::ZERO;
        times
            .iter()
            .map(|t| {
                let gap = *t - last;
                last = *t;
                gap
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn waits_stay_within_the_interval_and_its_jitter() {
        let times = polls(config(1000, 0.2), vec![true; 200]).await;
        let gaps = gaps(&times);
        assert_eq!(gaps.len(), 201);
        for gap in &gaps {
            assert!(
                (800..=1200).contains(&(gap.as_millis() as u64)),
                "gap {gap:?} outside 1000 ms ± 20%"
            );
        }
        // The jitter is used, not a constant offset: both halves of the range are hit.
        assert!(gaps.iter().any(|g| g.as_millis() < 950));
        assert!(gaps.iter().any(|g| g.as_millis() > 1050));
        // No jitter: exactly the interval.
        let exact = gaps_of(config(500, 0.0), vec![true; 10]).await;
        assert!(
            exact.iter().all(|g| *g == Duration::from_millis(500)),
            "{exact:?}"
        );
    }

    async fn gaps_of(config: PollConfig, script: Vec<bool>) -> Vec<Duration> {
        gaps(&polls(config, script).await)
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_with_full_jitter_and_recover() {
        // 8 failures, then successes.
        let mut script = vec![false; 8];
        script.extend([true; 4]);
        let gaps = gaps_of(config(100, 0.2), script).await;
        // gaps[0] precedes the first poll; gaps[k] follows the k-th poll's result.
        assert!((80..=120).contains(&(gaps[0].as_millis() as u64)));
        for (n, gap) in gaps[1..=8].iter().enumerate() {
            let failures = n as u32 + 1;
            let ceiling = (100u64 << failures).min(1600);
            let ms = gap.as_millis() as u64;
            assert!(
                (80..=ceiling).contains(&ms),
                "after {failures} failures: {ms} ms outside [80, {ceiling}]"
            );
        }
        // The backoff grows: the later failures wait longer in total than the first.
        let early: Duration = gaps[1..=3].iter().sum();
        let late: Duration = gaps[6..=8].iter().sum();
        assert!(late > early, "{gaps:?}");
        // Recovered: back to the interval.
        for gap in &gaps[9..] {
            assert!((80..=120).contains(&(gap.as_millis() as u64)), "{gaps:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_loop_during_a_wait() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let polled = Arc::new(Mutex::new(0));
        let count = Arc::clone(&polled);
        let task = tokio::spawn(run(
            Schedule::new(PollConfig::every(Duration::from_secs(3600)), 1),
            stop_rx,
            true,
            move || {
                *count.lock().unwrap() += 1;
                async { true }
            },
        ));
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the loop ends at once")
            .unwrap();
        assert_eq!(*polled.lock().unwrap(), 0);
    }

    #[test]
    fn env_values_are_checked() {
        let bad = |name: &'static str, value: &'static str| {
            PollConfig::from_vars(|n| (n == name).then(|| value.to_owned())).unwrap_err()
        };
        assert_eq!(
            bad(JITTER_ENV, "0.95").as_slice()[0].source(),
            Some(&SourceName::EnvVar(JITTER_ENV.into()))
        );
        assert!(bad(INTERVAL_ENV, "soon").to_string().contains(INTERVAL_ENV));
        let off = PollConfig::from_vars(|n| (n == INTERVAL_ENV).then(|| "0".into())).unwrap();
        assert!(!off.enabled());
    }

    #[test]
    fn both_bad_variables_are_reported_at_once() {
        let errors = PollConfig::from_vars(|n| match n {
            INTERVAL_ENV => Some("30s".into()),
            JITTER_ENV => Some("0.95".into()),
            _ => None,
        })
        .unwrap_err();
        let shown: Vec<String> = errors.iter().map(Error::to_string).collect();
        assert_eq!(
            shown,
            [
                "env var `EAC_REFRESH_POLL_INTERVAL_MS`: got `30s`, expected a whole number of \
                 milliseconds, at most 86400000 (a day); 0 disables polling",
                "env var `EAC_REFRESH_POLL_JITTER_PCT`: got `0.95`, expected a fraction from 0.0 \
                 to 0.9 (0.2 is ±20%)",
            ]
        );
    }
}
