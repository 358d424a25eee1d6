//! Publishing, unchanged candidates, snapshots.

use eac_accessor::{Event, Origin, Outcome};
use eac_tests::{APP_TOML, ConfigDir, Greeting, Limits, app_with};

use crate::accessor_for;

#[test]
fn build_publishes_version_1_with_every_section_deserialized() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).expect("valid config");
    let snapshot = accessor.load_full();
    assert_eq!(snapshot.version(), 1);
    assert_eq!(snapshot.origin(), &Origin::Startup);
    assert_eq!(snapshot.section::<Greeting>().message, "hello");
    assert_eq!(snapshot.section::<Limits>().max_body_bytes, 1_048_576);
    assert_eq!(snapshot.document()["limits"]["request_timeout_ms"], 5000);
    let status = accessor.status();
    assert_eq!(status.version, 1);
    assert_eq!(status.hash, snapshot.hash());
}

#[test]
fn a_changed_file_publishes_the_next_version_naming_changed_sections() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let before = accessor.load_full();
    dir.write(
        "app.toml",
        &app_with("message = \"hello\"", "message = \"bonjour\""),
    );

    let outcome = accessor.reload(Origin::Refresh).expect("valid edit");
    let Outcome::Published { snapshot, changed } = outcome else {
        panic!("expected a publish, got {outcome:?}");
    };
    assert_eq!(snapshot.version(), 2);
    assert_eq!(changed, ["greeting"]);
    assert_ne!(snapshot.hash(), before.hash());
    assert_eq!(accessor.load().section::<Greeting>().message, "bonjour");
    // The old snapshot a reader still holds is untouched.
    assert_eq!(before.version(), 1);
    assert_eq!(before.section::<Greeting>().message, "hello");
}

#[test]
fn identical_content_publishes_nothing_even_with_keys_reordered() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let mut events = accessor.events();

    // Same content, rewritten: unchanged.
    dir.write("app.toml", APP_TOML);
    let outcome = accessor.reload(Origin::Refresh).unwrap();
    assert!(!outcome.is_published());
    assert_eq!(outcome.version(), 1);

    // Same values, sections and keys in another order, other whitespace: unchanged.
    let reordered = "[upstream]\napi_key = \"s3cr3t-k3y-value\"\nurl = \"https://upstream.example\"\n\
        [features]\nshout = false\n[limits]\nrequest_timeout_ms = 5000\nmax_body_bytes = 1048576\n\
        [greeting]\nmessage   =   \"hello\"\n";
    dir.write("app.toml", reordered);
    assert_eq!(
        accessor.reload(Origin::Refresh).unwrap().as_str(),
        "unchanged"
    );
    assert_eq!(accessor.load().version(), 1);

    for _ in 0..2 {
        match events.try_recv() {
            Ok(Event::Unchanged { version: 1, .. }) => {}
            other => panic!("expected Unchanged, got {other:?}"),
        }
    }
    assert_eq!(accessor.status().last_reload.unwrap().outcome, "unchanged");
}

#[test]
fn versions_count_up_by_one_per_publish() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    for (i, timeout) in (1..=5).zip([100, 200, 300, 400, 500]) {
        dir.write(
            "app.toml",
            &app_with(
                "request_timeout_ms = 5000",
                &format!("request_timeout_ms = {timeout}"),
            ),
        );
        let outcome = accessor.reload(Origin::Refresh).unwrap();
        assert_eq!(outcome.version(), i + 1);
        assert_eq!(
            outcome.snapshot().section::<Limits>().request_timeout_ms,
            timeout
        );
    }
}

#[test]
fn redacted_document_hides_secrets_and_debug_shows_no_values() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let snapshot = accessor.load_full();
    let redacted = snapshot.redacted_document();
    assert_eq!(redacted["upstream"]["api_key"], "[redacted]");
    assert_eq!(redacted["upstream"]["url"], "https://upstream.example");
    assert!(!redacted.to_string().contains(eac_tests::SECRET));
    let debug = format!("{snapshot:?} {accessor:?}");
    assert!(!debug.contains(eac_tests::SECRET), "{debug}");
    assert!(debug.contains("version: 1"), "{debug}");
    assert_eq!(accessor.secret_paths(), ["upstream.api_key"]);
}
