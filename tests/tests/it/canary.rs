//! The canary's guard on Tokio's paused clock: promoted when the window passed without
//! a breach, aborted at once on a breach, and aborted 30 s past the window when it had
//! too few requests to judge — with no real time spent waiting.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use eac_accessor::canary::{CanaryConfig, Role};
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator, ReloadMode, Triggered};
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, Event, Origin, Outcome};
use eac_tests::Greeting;

fn greeting(message: &str) -> String {
    format!("[greeting]\nmessage = \"{message}\"\n")
}

/// An accessor on one document and a coordinator in canary mode (window 60 s, 100
/// requests at least).
fn coordinator() -> (Memory, EaCAccessor, ReloadCoordinator) {
    let doc = Memory::new("app.toml", Format::Toml, greeting("stable"));
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .source(doc.clone())
        .build()
        .unwrap();
    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    config.mode = ReloadMode::Canary;
    config.canary = CanaryConfig::default();
    config.canary.window = Duration::from_secs(60);
    config.canary.thresholds.min_requests = 100;
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    (doc, accessor, reloads)
}

/// Changes the document to `message` and reloads: the canary's version.
async fn change(doc: &Memory, reloads: &ReloadCoordinator, message: &str) -> u64 {
    doc.set(greeting(message));
    let Triggered::Reloaded(Outcome::Canary { canary, .. }) =
        reloads.trigger(Origin::Refresh).await.unwrap()
    else {
        panic!("no canary started");
    };
    canary.version()
}

/// [`coordinator`], with a canary of `message` started.
async fn canary_of(message: &str) -> (EaCAccessor, ReloadCoordinator, u64) {
    let (doc, accessor, reloads) = coordinator();
    let canary = change(&doc, &reloads, message).await;
    (accessor, reloads, canary)
}

/// Counts `n` requests of `role` on the running canary, `errors` of them 5xx.
fn requests(reloads: &ReloadCoordinator, role: Role, n: u64, errors: u64, latency: Duration) {
    let canary = reloads.canary().expect("a canary runs");
    for i in 0..n {
        canary.stats(role).record(latency, i < errors);
    }
}

/// Waits (on the paused clock) until `done`, a bounded number of ticks.
async fn until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..5_000 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::thread::yield_now();
    }
    done()
}

#[tokio::test(start_paused = true)]
async fn a_canary_without_a_breach_is_promoted_once_its_window_passed() {
    let (accessor, reloads, canary) = canary_of("better").await;
    requests(&reloads, Role::Stable, 2_000, 2, Duration::from_millis(3));
    requests(&reloads, Role::Canary, 150, 0, Duration::from_millis(3));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        reloads.canary().is_some(),
        "promoted before its window passed"
    );
    assert_ne!(accessor.load().version(), canary);
    assert!(
        until(|| accessor.load().version() == canary).await,
        "not promoted"
    );
    assert_eq!(accessor.load().section::<Greeting>().message, "better");
    assert!(reloads.canary().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_breach_aborts_the_canary_at_once_with_its_figures() {
    let (accessor, reloads, canary) = canary_of("hurting").await;
    requests(&reloads, Role::Stable, 2_000, 4, Duration::from_millis(3));
    requests(&reloads, Role::Canary, 150, 30, Duration::from_millis(3));
    assert!(until(|| reloads.canary().is_none()).await, "not aborted");
    let rejection = accessor.status().last_rejection.unwrap();
    assert_eq!(
        rejection.errors[0].message(),
        "canary: 5xx 20.0% vs 0.2% on 150 requests"
    );
    assert_ne!(accessor.load().version(), canary);
    assert_eq!(accessor.load().section::<Greeting>().message, "stable");
}

#[tokio::test(start_paused = true)]
async fn too_few_requests_keep_it_judged_until_30_s_past_the_window_then_abort_it() {
    let (accessor, reloads, _) = canary_of("quiet").await;
    requests(&reloads, Role::Canary, 10, 0, Duration::from_millis(3));
    tokio::time::sleep(Duration::from_secs(75)).await;
    assert!(reloads.canary().is_some(), "gave up before the grace ended");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(until(|| reloads.canary().is_none()).await, "not aborted");
    let rejection = accessor.status().last_rejection.unwrap();
    assert_eq!(
        rejection.errors[0].message(),
        "canary: 10 requests by 30 s past the window, fewer than the 100 needed"
    );
    assert_eq!(accessor.load().section::<Greeting>().message, "stable");
}

/// Every event sent so far.
fn sent(events: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_newer_change_replaces_the_canary_and_its_window_starts_again() {
    let (doc, accessor, reloads) = coordinator();
    let stable = accessor.load().version();
    let mut events = accessor.events();
    let first = change(&doc, &reloads, "first").await;
    requests(&reloads, Role::Stable, 2_000, 2, Duration::from_millis(3));
    requests(&reloads, Role::Canary, 150, 0, Duration::from_millis(3));
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(reloads.canary().map(|c| c.version()), Some(first));

    let second = change(&doc, &reloads, "second").await;
    let replaced = Instant::now();
    assert!(second > first);
    let running = reloads.canary().unwrap();
    assert_eq!(running.version(), second);
    // Judged on its own requests, from nothing.
    assert_eq!(running.stats(Role::Canary).figures().requests, 0);
    assert_eq!(running.status().window_left, Duration::from_secs(60));
    drop(running);
    requests(&reloads, Role::Stable, 2_000, 2, Duration::from_millis(3));
    requests(&reloads, Role::Canary, 150, 0, Duration::from_millis(3));
    // 75 s after the first started, 35 s after the second: still judged.
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(
        reloads.canary().map(|c| c.version()),
        Some(second),
        "promoted on the replaced canary's window"
    );
    assert_eq!(accessor.load().version(), stable);
    assert!(
        until(|| accessor.load().version() == second).await,
        "not promoted"
    );
    let after = replaced.elapsed();
    assert!(
        after >= Duration::from_secs(60) && after < Duration::from_secs(64),
        "promoted {after:?} after the replacement"
    );
    assert_eq!(accessor.load().section::<Greeting>().message, "second");
    assert!(accessor.history().iter().all(|e| e.version != first));

    let ends: Vec<_> = sent(&mut events)
        .into_iter()
        .filter_map(|event| match event {
            Event::CanaryStarted { canary, .. } => Some((canary, "started")),
            Event::CanaryEnded {
                canary, decision, ..
            } => Some((canary, decision)),
            Event::Published { version, .. } => Some((version, "published")),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        [
            (first, "started"),
            (first, "superseded"),
            (second, "started"),
            (second, "published"),
            (second, "promoted"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_sends_its_event_with_the_figures() {
    let (doc, accessor, reloads) = coordinator();
    let stable = accessor.load().version();
    let mut events = accessor.events();
    let canary = change(&doc, &reloads, "hurting").await;
    requests(&reloads, Role::Stable, 2_000, 4, Duration::from_millis(3));
    requests(&reloads, Role::Canary, 150, 30, Duration::from_millis(3));
    assert!(until(|| reloads.canary().is_none()).await, "not aborted");

    let figures = "canary: 5xx 20.0% vs 0.2% on 150 requests";
    let events = sent(&mut events);
    let kinds: Vec<_> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap()["type"].clone())
        .collect();
    assert_eq!(kinds, ["canary_started", "rejected", "canary_ended"]);
    match &events[1] {
        Event::Rejected {
            version, errors, ..
        } => assert_eq!(
            (*version, errors.iter().next().unwrap().message()),
            (stable, figures)
        ),
        other => panic!("{other:?}"),
    }
    // As `GET events` sends it.
    assert_eq!(
        serde_json::to_value(&events[2]).unwrap(),
        serde_json::json!({
            "type": "canary_ended",
            "version": stable,
            "canary": canary,
            "decision": "aborted",
            "why": figures,
        })
    );
}
