//! The reload coordinator: single flight, cooldown, backoff, timeout, auto-rollback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use eac_accessor::reload::{ReloadConfig, ReloadCoordinator, ReloadMode};
use eac_accessor::source::{Format, Layer, Memory, Source};
use eac_accessor::{EaCAccessor, Error, ErrorKind, Event, Origin, SectionWatch, SourceName};
use eac_tests::{Features, Greeting};

fn doc(message: &str, shout: bool) -> String {
    format!("[greeting]\nmessage = \"{message}\"\n[features]\nshout = {shout}\n")
}

fn config() -> ReloadConfig {
    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    config.backoff = Duration::from_millis(200);
    config.backoff_max = Duration::from_secs(2);
    config
}

/// [`config`] with a build timeout of 50 ms.
fn timing_out() -> ReloadConfig {
    let mut config = config();
    config.build_timeout = Duration::from_millis(50);
    config
}

fn setup(config: ReloadConfig) -> (ReloadCoordinator, Memory) {
    let source = Memory::new("app", Format::Toml, doc("one", false));
    (coordinator(source.clone(), config), source)
}

/// A coordinator with `config` over an accessor of the greeting and the features,
/// read from `source`.
fn coordinator(source: impl Source, config: ReloadConfig) -> ReloadCoordinator {
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .section::<Features>()
        .source(source)
        .build()
        .unwrap();
    ReloadCoordinator::new(accessor, config)
}

/// An unforced (`false`) or forced refresh that must publish: the version it published.
async fn published(reloads: &ReloadCoordinator, forced: bool) -> u64 {
    reloads
        .refresh(Origin::Refresh, forced)
        .await
        .unwrap()
        .version()
}

/// A refresh running on a task of its own.
type Spawned = tokio::task::JoinHandle<Result<eac_accessor::Outcome, eac_accessor::Errors>>;

/// An unforced refresh on a task of its own.
fn spawn_refresh(reloads: &ReloadCoordinator) -> Spawned {
    let reloads = reloads.clone();
    tokio::spawn(async move { reloads.refresh(Origin::Refresh, false).await })
}

/// A health check that fails every snapshot with `[features] shout` on.
fn no_shouting(reloads: &ReloadCoordinator) {
    reloads.health_check("no-shouting", |snapshot| async move {
        if snapshot.section::<Features>().shout {
            Err("shouting breaks the downstream parser".to_owned())
        } else {
            Ok(())
        }
    });
}

/// The next event, within 10 s.
async fn next_event(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_hundred_concurrent_refreshes_make_one_run_and_share_its_result() {
    let (reloads, source) = setup(config());
    source.set(doc("two", false));
    let calls = (0..100).map(|_| reloads.refresh(Origin::Refresh, false));
    let results = futures_util::future::join_all(calls).await;
    assert_eq!(reloads.runs(), 1);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(o) if o.is_published() && o.version() == 2))
    );
    assert_eq!(reloads.accessor().load().version(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cooldown_refuses_unforced_refreshes_until_it_passes() {
    let mut config = config();
    config.cooldown = Duration::from_secs(30);
    let (reloads, source) = setup(config);
    source.set(doc("two", false));
    assert_eq!(published(&reloads, false).await, 2);

    source.set(doc("three", false));
    let errors = reloads.refresh(Origin::Refresh, false).await.unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Throttled);
    assert!(errors.to_string().contains("cooling down"), "{errors}");
    assert_eq!(reloads.accessor().load().version(), 2);

    // Forced: goes through at once.
    assert_eq!(published(&reloads, true).await, 3);

    source.set(doc("four", false));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(published(&reloads, false).await, 4);
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_with_jitter_and_a_success_resets() {
    let (reloads, source) = setup(config());
    source.set(doc("", false)); // rejected: empty message
    let mut ceiling = Duration::from_millis(200);
    for failure in 1..=5 {
        let errors = reloads.refresh(Origin::Refresh, true).await.unwrap_err();
        assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Schema);
        let wait = reloads.throttled_for().unwrap_or_default();
        assert!(
            wait <= ceiling,
            "failure {failure}: waited {wait:?} > {ceiling:?}"
        );
        if wait > Duration::ZERO {
            let refused = reloads.refresh(Origin::Refresh, false).await.unwrap_err();
            assert_eq!(refused.as_slice()[0].kind(), ErrorKind::Throttled);
            assert!(refused.to_string().contains("backing off"), "{refused}");
        }
        ceiling = (ceiling * 2).min(Duration::from_secs(2));
    }
    assert_eq!(
        reloads.runs(),
        5,
        "throttled refreshes never ran the pipeline"
    );

    tokio::time::advance(Duration::from_secs(2)).await;
    source.set(doc("fixed", false));
    assert_eq!(published(&reloads, false).await, 2);
    assert_eq!(
        reloads.throttled_for(),
        None,
        "a success clears the backoff"
    );
}

/// A source that reads its document, then holds the read while the test keeps it
/// shut: the run has read what it will publish, and is still running.
#[derive(Debug, Clone)]
struct Held {
    inner: Memory,
    shut: Arc<(Mutex<bool>, Condvar)>,
    reads: Arc<AtomicUsize>,
}

impl Held {
    fn new(inner: Memory) -> Held {
        Held {
            inner,
            shut: Arc::default(),
            reads: Arc::default(),
        }
    }

    /// Sets the document the reads find.
    fn set(&self, document: String) {
        self.inner.set(document);
    }

    /// Shuts the gate, with `document` for the read that will wait at it.
    fn hold(&self, document: String) {
        self.set(document);
        self.shut(true);
    }

    fn shut(&self, on: bool) {
        *self.shut.0.lock().unwrap() = on;
        self.shut.1.notify_all();
    }

    /// Waits (bounded) until `n` reads have been made.
    async fn until_reads(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.reads.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "no read");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Source for Held {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        let layers = self.inner.load();
        self.reads.fetch_add(1, Ordering::SeqCst);
        let (shut, cv) = &*self.shut;
        let mut shut = shut.lock().unwrap();
        while *shut {
            shut = cv.wait(shut).unwrap();
        }
        layers
    }
}

/// A coordinator over a [`Held`] source, with `config`, and its accessor.
fn held(config: ReloadConfig) -> (ReloadCoordinator, EaCAccessor, Held) {
    let source = Held::new(Memory::new("app", Format::Toml, doc("one", false)));
    let reloads = coordinator(source.clone(), config);
    let accessor = reloads.accessor().clone();
    (reloads, accessor, source)
}

#[tokio::test]
async fn a_run_over_the_build_timeout_publishes_nothing_even_when_it_finishes_later() {
    let (reloads, accessor, source) = held(timing_out());
    let mut events = accessor.events();

    source.hold(doc("late", false));
    let errors = reloads.refresh(Origin::Refresh, false).await.unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Timeout);
    // While the abandoned run still waits on its source, no new run piles up behind it.
    let errors = reloads.refresh(Origin::Refresh, true).await.unwrap_err();
    assert!(
        errors.to_string().contains("still reading its sources"),
        "{errors}"
    );
    assert_eq!(reloads.runs(), 2);

    // Let the abandoned run finish: it must not publish, and the refused refresh then
    // runs by itself.
    source.shut(false);
    let event = next_event(&mut events).await;
    let Event::Rejected { errors, .. } = event else {
        panic!("expected a rejection, got {event:?}")
    };
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Timeout);
    let event = next_event(&mut events).await;
    assert!(
        matches!(event, Event::Published { version: 2, .. }),
        "{event:?}"
    );
    reloads.shutdown().await;
}

#[tokio::test]
async fn an_edit_made_while_an_abandoned_run_reads_goes_live_when_the_read_returns() {
    let (reloads, accessor, source) = held(timing_out());
    let mut versions = accessor.subscribe::<Greeting>();

    // A slow read outlives the build timeout and is abandoned.
    source.shut(true);
    let errors = reloads.refresh(Origin::Refresh, false).await.unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Timeout);
    // A good edit, and its trigger, arrive while that read still blocks.
    source.set(doc("good edit", false));
    let errors = reloads
        .trigger(Origin::FileChange {
            path: "app.toml".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Timeout);
    assert_eq!(accessor.load().version(), 1);

    // The read returns; with no further trigger, the edit goes live.
    source.shut(false);
    goes_live_by_itself(&accessor, &mut versions, "good edit", 2).await;
    reloads.shutdown().await;
}

#[tokio::test]
async fn a_refresh_never_joins_a_run_that_read_before_it() {
    let (reloads, _, source) = held(config());
    source.hold(doc("two", false));
    let first = spawn_refresh(&reloads);
    // Wait until that run is reading (blocked on the gate).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reloads.runs() == 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    source.set(doc("three", false));
    let second = spawn_refresh(&reloads);
    source.shut(false);
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    // The first read may have seen "two" or "three"; the second always sees "three".
    assert!(first.version() >= 2);
    assert_eq!(
        second.snapshot().section::<Greeting>().message,
        "three",
        "the second refresh was answered by a run that read before it"
    );
}

/// Waits (up to 10 s) for the next change of the greeting, which no trigger of the
/// test's asks for: it says `message`, at `version`.
async fn goes_live_by_itself(
    accessor: &EaCAccessor,
    greetings: &mut SectionWatch<Greeting>,
    message: &str,
    version: u64,
) {
    tokio::time::timeout(Duration::from_secs(10), greetings.changed())
        .await
        .expect("it went live without another trigger")
        .unwrap();
    let now = accessor.load_full();
    assert_eq!(now.section::<Greeting>().message, message);
    assert_eq!(now.version(), version);
}

/// Starts a refresh whose run reads (`source`'s document as it is now) and is held there, then a
/// second refresh, after an edit to `edit`, that comes while the first run is held:
/// the two refreshes, and the held source to let go.
async fn a_refresh_behind_a_held_run(
    reloads: &ReloadCoordinator,
    source: &Held,
    edit: String,
) -> [Spawned; 2] {
    source.shut(true);
    let first = spawn_refresh(reloads);
    source.until_reads(2).await; // the build's read, then this run's
    source.set(edit);
    let second = spawn_refresh(reloads);
    // On this one-thread runtime, the second refresh runs up to its wait on the first.
    tokio::task::yield_now().await;
    [first, second]
}

#[tokio::test]
async fn a_refresh_that_came_while_a_run_read_waits_out_the_cooldown_that_run_set() {
    let mut config = config();
    config.cooldown = Duration::from_millis(300);
    let (reloads, _, source) = held(config);
    source.set(doc("two", false));
    let [first, second] = a_refresh_behind_a_held_run(&reloads, &source, doc("three", false)).await;
    source.shut(false);
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.snapshot().section::<Greeting>().message, "two");
    // Not refused by the cooldown the first publish began: it is owed a run that
    // reads after it.
    let second = second.await.unwrap().expect("the queued refresh ran");
    assert_eq!(second.snapshot().section::<Greeting>().message, "three");
    assert_eq!(second.version(), 3);
    reloads.shutdown().await;
}

#[tokio::test]
async fn a_refresh_that_came_while_a_failing_run_read_runs_by_itself_after_the_backoff() {
    let (reloads, accessor, source) = held(config());
    let mut greetings = accessor.subscribe::<Greeting>();
    source.set("[greeting]\nmessage = 5\n".to_owned()); // not a string: rejected
    let [first, second] = a_refresh_behind_a_held_run(&reloads, &source, doc("fixed", false)).await;
    source.shut(false);
    assert!(
        first.await.unwrap().is_err(),
        "the bad document was rejected"
    );
    let errors = second.await.unwrap().unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Throttled);
    assert!(errors.to_string().contains("runs by itself"), "{errors}");
    // With no further trigger, the fix goes live once the backoff ends.
    goes_live_by_itself(&accessor, &mut greetings, "fixed", 2).await;
    reloads.shutdown().await;
}

#[tokio::test]
async fn a_run_still_building_at_shutdown_publishes_nothing() {
    let (reloads, accessor, source) = held(config());
    let mut events = accessor.events();
    source.hold(doc("too late", false));
    let run = spawn_refresh(&reloads);
    source.until_reads(2).await;
    reloads.shutdown().await;
    source.shut(false);
    let errors = run.await.unwrap().unwrap_err();
    assert!(errors.to_string().contains("shut down"), "{errors}");
    assert_eq!(accessor.load().version(), 1);
    assert_eq!(accessor.load().section::<Greeting>().message, "one");
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, Event::Published { .. }), "{event:?}");
    }
}

#[tokio::test]
async fn a_failing_health_check_rolls_back_automatically() {
    let (reloads, source) = setup(config());
    let accessor = reloads.accessor().clone();
    no_shouting(&reloads);
    let mut events = accessor.events();

    source.set(doc("two", true));
    let errors = reloads.refresh(Origin::Refresh, false).await.unwrap_err();
    let e = &errors.as_slice()[0];
    assert_eq!(e.kind(), ErrorKind::HealthCheck);
    assert_eq!(
        e.message(),
        "health check `no-shouting` failed: shouting breaks the downstream parser; \
         version 2 was rolled back: version 3 republishes version 1"
    );
    let now = accessor.load_full();
    assert_eq!(now.version(), 3);
    assert_eq!(now.origin(), &Origin::AutoRollback { from: 1 });
    assert!(!now.section::<Features>().shout);
    assert_eq!(now.section::<Greeting>().message, "one");

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(match event {
            Event::Published {
                version, origin, ..
            } => format!("published v{version} ({origin})"),
            Event::Rejected { errors, .. } => format!("rejected: {}", errors.as_slice()[0].kind()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        seen,
        [
            "published v2 (refresh)",
            "published v3 (auto-rollback from 1)",
            "rejected: health_check"
        ]
    );
    let status = accessor.status();
    assert_eq!(
        status.last_rejection.unwrap().errors[0].kind(),
        ErrorKind::HealthCheck
    );
}

/// The reload settings from an environment holding just `vars`.
fn from_vars(vars: &[(&str, &str)]) -> Result<ReloadConfig, eac_accessor::Errors> {
    ReloadConfig::from_vars(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

#[test]
fn env_toggles_are_read_and_bad_values_name_the_variable() {
    let config = from_vars(&[
        ("EAC_REFRESH_COOLDOWN_MS", "1500"),
        ("EAC_WATCH_DEBOUNCE_MS", "20"),
    ])
    .unwrap();
    assert_eq!(config.cooldown, Duration::from_millis(1500));
    assert_eq!(config.max_wait, Duration::from_secs(1), "default max wait");
    assert_eq!(config.mode, ReloadMode::Auto);
    assert_eq!(config.debounce, Duration::from_millis(20));
    assert_eq!(config.backoff, ReloadConfig::default().backoff);

    let error = from_vars(&[("EAC_REFRESH_BACKOFF_MS", "soon")]).unwrap_err();
    assert_eq!(
        error.as_slice()[0].source(),
        Some(&SourceName::EnvVar("EAC_REFRESH_BACKOFF_MS".into()))
    );
}

#[test]
fn the_reload_mode_and_max_wait_come_from_the_environment() {
    let config = from_vars(&[
        ("EAC_RELOAD_MODE", "Manual"),
        ("EAC_WATCH_MAX_WAIT_MS", "300"),
    ])
    .unwrap();
    assert_eq!(config.mode, ReloadMode::Manual);
    assert_eq!(config.max_wait, Duration::from_millis(300));
    let error = from_vars(&[("EAC_RELOAD_MODE", "sometimes")]).unwrap_err();
    assert_eq!(
        error.as_slice()[0].source(),
        Some(&SourceName::EnvVar("EAC_RELOAD_MODE".into()))
    );
    assert!(
        error.to_string().contains("`auto`, `manual` or `canary`"),
        "{error}"
    );
}

/// The publishes run on blocking threads; the health check's verdict is recorded on the
/// runtime's thread — this test's, where its local recorder counts it.
#[tokio::test]
async fn a_health_check_rollback_is_counted_as_a_rejection() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (reloads, source) = setup(config());
    no_shouting(&reloads);
    source.set(doc("two", true));
    reloads.refresh(Origin::Refresh, false).await.unwrap_err();
    let rejected: u64 = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == "eac_reload_total"
                && key.key().labels().any(|l| l.value() == "rejected")
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(
        rejected, 1,
        "the failed health check is a counted rejection"
    );
    let status = reloads.accessor().status();
    assert_eq!(status.last_reload.unwrap().outcome, "rejected");
}
