//! History, rollback, diff classification, preview, durable history.

use std::sync::{Arc, Mutex};

use eac_accessor::source::Dir;
use eac_accessor::{Candidate, ChangeKind, Class, EaCAccessor, ErrorKind, Event, Origin, Outcome};
use eac_tests::{APP_TOML, ConfigDir, Greeting, SECRET, app_with, app_with_api_key};
use serde_json::json;

use crate::{accessor_for, four_sections};

fn set_message(dir: &ConfigDir, text: &str) {
    dir.write(
        "app.toml",
        &app_with("message = \"hello\"", &format!("message = \"{text}\"")),
    );
}

#[test]
fn history_keeps_the_last_n_versions_and_rejections_apart() {
    let dir = ConfigDir::with_app();
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .history_limit(3)
        .build()
        .unwrap();
    for i in 0..5 {
        set_message(&dir, &format!("m{i}"));
        accessor.reload(Origin::Refresh).unwrap();
    }
    set_message(&dir, "");
    accessor.reload(Origin::Refresh).unwrap_err();

    let history = accessor.history();
    let versions: Vec<u64> = history.iter().map(|e| e.version).collect();
    assert_eq!(versions, [4, 5, 6]);
    assert!(history.iter().all(|e| e.changed == ["greeting"]));
    assert_eq!(history[2].origin, Origin::Refresh);
    let rejections = accessor.rejections();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].version, 6);
    assert_eq!(rejections[0].errors[0].key(), Some("greeting.message"));
}

#[test]
fn rollback_publishes_a_new_version_and_notifies_what_changed_back() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    set_message(&dir, "changed");
    accessor.reload(Origin::Refresh).unwrap(); // v2
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let _sub = accessor.on_change::<Greeting, _>(move |c| {
        sink.lock()
            .unwrap()
            .push((c.version, c.new.message.clone()));
    });
    let mut events = accessor.events();

    let outcome = accessor.rollback_to(1).unwrap();
    let Outcome::Published { snapshot, changed } = outcome else {
        panic!("rollback must publish");
    };
    assert_eq!(snapshot.version(), 3, "a rollback is a new version");
    assert_eq!(snapshot.origin(), &Origin::Rollback { from: 1 });
    assert_eq!(changed, ["greeting"]);
    assert_eq!(
        snapshot.hash(),
        accessor.history()[0].hash,
        "the content of version 1"
    );
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");
    assert_eq!(*seen.lock().unwrap(), [(3, "hello".to_owned())]);
    assert!(matches!(
        events.try_recv(),
        Ok(Event::Published {
            version: 3,
            origin: Origin::Rollback { from: 1 },
            ..
        })
    ));
    assert_eq!(
        accessor.history().last().unwrap().origin,
        Origin::Rollback { from: 1 }
    );
}

#[test]
fn rollback_to_an_unknown_version_is_a_clear_error_and_changes_nothing() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let errors = accessor.rollback_to(42).unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::NotFound);
    assert_eq!(
        errors.to_string(),
        "configuration rejected: version 42 is not in the history (kept: 1..=1)"
    );
    assert_eq!(accessor.load().version(), 1);
}

#[test]
fn rollback_reruns_readiness_hooks() {
    let dir = ConfigDir::with_app();
    let veto = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&veto);
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .readiness("gate", move |_| {
            if *flag.lock().unwrap() {
                Err("closed".into())
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    set_message(&dir, "two");
    accessor.reload(Origin::Refresh).unwrap();
    *veto.lock().unwrap() = true;
    let errors = accessor.rollback_to(1).unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Veto);
    assert_eq!(accessor.load().version(), 2);
}

#[test]
fn a_diff_classifies_every_change_kind() {
    let dir = ConfigDir::new();
    // `features.shout` is optional: the overlay adds it.
    dir.write("app.toml", &app_with("shout = false\n", ""));
    let accessor = accessor_for(&dir).unwrap();
    let overlay = json!({
        "greeting": {"message": "hi"},                      // safe
        "limits": {"max_body_bytes": "big"},                // breaking: type change
        "features": {"shout": true, "extra": "x-value"},    // warning (added) + unknown key
        "upstream": {"api_key": "n3w-s3cr3t-value-123"},    // safe, secret redacted
        "newsection": {"x": "n-value"},                     // unknown section
    });
    let preview = accessor.preview(Candidate::Overlay(overlay));
    assert!(!preview.would_publish);
    let classes: Vec<(String, ChangeKind, Class)> = preview
        .diff
        .changes
        .iter()
        .map(|c| (c.key.clone(), c.kind, c.class))
        .collect();
    assert!(classes.contains(&(
        "limits.max_body_bytes".into(),
        ChangeKind::TypeChanged,
        Class::Breaking
    )));
    assert!(classes.contains(&("greeting.message".into(), ChangeKind::Changed, Class::Safe)));
    assert!(classes.contains(&("features.shout".into(), ChangeKind::Added, Class::Warning)));
    assert_eq!(preview.diff.worst(), Some(Class::Breaking));
    // Unknown keys reject the candidate and never reach the diff.
    let unknown: Vec<_> = preview
        .errors
        .iter()
        .filter(|e| e.kind() == ErrorKind::UnknownKey)
        .filter_map(|e| e.key())
        .collect();
    assert_eq!(unknown, ["features.extra", "newsection"]);
    assert!(
        classes
            .iter()
            .all(|(key, _, _)| key != "features.extra" && key != "newsection")
    );
    let json = serde_json::to_string(&preview).unwrap();
    assert!(
        !json.contains("x-value") && !json.contains("n-value"),
        "{json}"
    );
    assert!(
        !json.contains("n3w-s3cr3t-value-123") && !json.contains(SECRET),
        "{json}"
    );
    insta::assert_json_snapshot!("preview_every_kind", preview);
    insta::assert_snapshot!("diff_text_every_kind", preview.diff.to_string());
}

#[test]
fn removals_are_classified_by_whether_the_schema_needs_the_key() {
    let dir = ConfigDir::new();
    // features.shout is optional (serde default); limits.request_timeout_ms is required.
    dir.write("app.toml", APP_TOML);
    let accessor = accessor_for(&dir).unwrap();
    dir.write(
        "app.toml",
        &APP_TOML
            .replacen("shout = false\n", "", 1)
            .replacen("request_timeout_ms = 5000\n", "", 1),
    );
    let preview = accessor.preview(Candidate::Sources);
    let by_key = |k: &str| {
        preview
            .diff
            .changes
            .iter()
            .find(|c| c.key == k)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_key("features.shout").class, Class::Warning);
    assert_eq!(by_key("limits.request_timeout_ms").class, Class::Breaking);
    assert_eq!(
        by_key("limits.request_timeout_ms").reason,
        "required key removed"
    );

    // A whole section removed is breaking.
    let without_features = APP_TOML.replacen("[features]\nshout = false\n", "", 1);
    dir.write("app.toml", &without_features);
    let preview = accessor.preview(Candidate::Sources);
    let change = preview
        .diff
        .changes
        .iter()
        .find(|c| c.key == "features")
        .unwrap();
    assert_eq!(
        (change.kind, change.class),
        (ChangeKind::Removed, Class::Breaking)
    );
    assert_eq!(change.reason, "section removed");
}

#[test]
fn preview_leaves_the_version_and_subscribers_untouched() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let mut watch = accessor.subscribe::<Greeting>();
    let mut events = accessor.events();
    let preview = accessor.preview(Candidate::Overlay(
        json!({"greeting": {"message": "preview"}}),
    ));
    assert!(preview.would_publish);
    assert!(preview.errors.is_empty());
    assert_eq!(preview.diff.changes.len(), 1);
    assert_eq!(accessor.load().version(), 1);
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");
    assert!(!watch.has_changed());
    assert!(events.try_recv().is_err(), "a preview emits no event");
    assert_eq!(accessor.history().len(), 1);
    let _ = watch.latest();

    let same = accessor.preview(Candidate::Sources);
    assert!(same.unchanged && !same.would_publish && same.diff.is_empty());
}

#[test]
fn diff_between_kept_versions_redacts_secrets() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    dir.write("app.toml", &app_with_api_key("\"another-secret-42\""));
    accessor.reload(Origin::Refresh).unwrap();
    let diff = accessor.diff_versions(1, 2).unwrap();
    assert_eq!(diff.changes.len(), 1);
    assert_eq!(diff.changes[0].key, "upstream.api_key");
    assert_eq!(diff.changes[0].old, Some(json!("[redacted]")));
    let text = diff.to_string();
    assert!(
        !text.contains(SECRET) && !text.contains("another-secret-42"),
        "{text}"
    );
    insta::assert_snapshot!(text, @r#"~ upstream.api_key: "[redacted]" → "[redacted]"  [safe: value changed]"#);
    assert_eq!(
        accessor.diff_versions(1, 9).unwrap_err().as_slice()[0].kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn durable_history_survives_a_restart_and_versions_keep_counting() {
    let dir = ConfigDir::with_app();
    let state = eac_tests::private_dir();
    let build = || {
        four_sections()
            .source(Dir::new(dir.path()))
            .durable_history(state.path())
            .fallback_to_last_good(true)
    };
    {
        let accessor = build().build().unwrap();
        set_message(&dir, "two");
        accessor.reload(Origin::Refresh).unwrap();
        set_message(&dir, "three");
        accessor.reload(Origin::Refresh).unwrap();
        assert_eq!(accessor.load().version(), 3);
    }
    // Restart on the same content: same version, history read back.
    let accessor = build().build().unwrap();
    assert_eq!(accessor.load().version(), 3);
    assert_eq!(
        accessor
            .history()
            .iter()
            .map(|e| e.version)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Rollback reaches a version from before the restart.
    let outcome = accessor.rollback_to(1).unwrap();
    assert_eq!(outcome.version(), 4);
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");
    drop(accessor);

    // Broken sources at start: the opt-in fallback starts on the last good document.
    dir.write("app.toml", "[greeting\n");
    let accessor = build().build().unwrap();
    assert_eq!(accessor.load().version(), 4);
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");
    let status = accessor.status();
    assert_eq!(
        status.last_rejection.unwrap().errors[0].kind(),
        ErrorKind::Parse
    );
    // Without the opt-in, a broken start fails.
    assert!(build().fallback_to_last_good(false).build().is_err());
}
