//! Subscriptions fire once per real change of their section, never for rejections.

use std::sync::{Arc, Mutex};

use eac_accessor::{EaCAccessor, Event, Origin, source::Dir};
use eac_tests::{ConfigDir, Greeting, Limits, app_with};

use crate::accessor_for;

fn message(dir: &ConfigDir, text: &str) {
    dir.write(
        "app.toml",
        &app_with("message = \"hello\"", &format!("message = \"{text}\"")),
    );
}

#[test]
fn on_change_sees_every_real_change_of_its_section_in_order() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let _sub = accessor.on_change::<Greeting, _>(move |change| {
        sink.lock().unwrap().push((
            change.version,
            change.old.message.clone(),
            change.new.message.clone(),
        ));
    });
    let limit_calls = Arc::new(Mutex::new(0));
    let limit_sink = Arc::clone(&limit_calls);
    let _limits = accessor.on_change::<Limits, _>(move |_| *limit_sink.lock().unwrap() += 1);

    message(&dir, "one");
    accessor.reload(Origin::Refresh).unwrap(); // v2: greeting changed
    accessor.reload(Origin::Refresh).unwrap(); // unchanged
    message(&dir, ""); // rejected: empty message
    accessor.reload(Origin::Refresh).unwrap_err();
    message(&dir, "two");
    accessor.reload(Origin::Refresh).unwrap(); // v3

    assert_eq!(
        *seen.lock().unwrap(),
        [
            (2, "hello".to_owned(), "one".to_owned()),
            (3, "one".to_owned(), "two".to_owned())
        ]
    );
    assert_eq!(*limit_calls.lock().unwrap(), 0, "limits never changed");
}

#[test]
fn dropping_the_subscription_stops_the_callback() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let calls = Arc::new(Mutex::new(0));
    let sink = Arc::clone(&calls);
    let sub = accessor.on_change::<Greeting, _>(move |_| *sink.lock().unwrap() += 1);
    message(&dir, "one");
    accessor.reload(Origin::Refresh).unwrap();
    drop(sub);
    message(&dir, "two");
    accessor.reload(Origin::Refresh).unwrap();
    assert_eq!(*calls.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_section_watch_wakes_only_for_its_section() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let mut greeting = accessor.subscribe::<Greeting>();
    let mut limits = accessor.subscribe::<Limits>();
    assert!(!greeting.has_changed());

    // Unchanged and rejected candidates wake nobody.
    accessor.reload(Origin::Refresh).unwrap();
    message(&dir, "");
    accessor.reload(Origin::Refresh).unwrap_err();
    assert!(!greeting.has_changed());

    message(&dir, "one");
    accessor.reload(Origin::Refresh).unwrap();
    greeting.changed().await.unwrap();
    let (version, value) = greeting.latest();
    assert_eq!((version, value.message.as_str()), (2, "one"));
    assert!(!greeting.has_changed(), "one notification per change");
    assert!(
        !limits.has_changed(),
        "a sibling's change does not wake limits"
    );
    assert_eq!(limits.latest().1.max_body_bytes, 1_048_576);
}

#[tokio::test]
async fn a_watch_ends_when_the_accessor_is_dropped() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let mut greeting = accessor.subscribe::<Greeting>();
    drop(accessor);
    assert!(greeting.changed().await.is_err());
}

#[test]
fn the_event_stream_reports_each_outcome_in_order() {
    let dir = ConfigDir::with_app();
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .section::<Limits>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();
    let mut events = accessor.events();
    message(&dir, "one");
    accessor.reload(Origin::Refresh).unwrap();
    accessor.reload(Origin::Refresh).unwrap();
    message(&dir, "");
    accessor.reload(Origin::Refresh).unwrap_err();

    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        kinds.push(match event {
            Event::Published {
                version, changed, ..
            } => format!("published v{version} {changed:?}"),
            Event::Unchanged { version, .. } => format!("unchanged v{version}"),
            Event::Rejected {
                version, errors, ..
            } => format!("rejected (v{version} stays) {}", errors.len()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        kinds,
        [
            "published v2 [\"greeting\"]",
            "unchanged v2",
            "rejected (v2 stays) 1"
        ]
    );
}
