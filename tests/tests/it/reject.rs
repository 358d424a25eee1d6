//! Every way a candidate is rejected, with the rendered errors snapshotted.

use eac_accessor::{EaCAccessor, ErrorKind, Errors, Event, Origin, SourceName, source::Dir};
use eac_tests::{ConfigDir, Greeting, Limits, app_with};

use crate::accessor_for;

/// Starts on the valid fixture, writes `text` as app.toml, reloads, and checks that the
/// rejection left version 1 in place. Returns the errors rendered with the dir scrubbed.
fn reject_after_edit(text: &str) -> (Errors, String) {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let before = accessor.load_full();
    let mut events = accessor.events();
    dir.write("app.toml", text);
    let errors = accessor
        .reload(Origin::Refresh)
        .expect_err("candidate must be rejected");

    let after = accessor.load_full();
    assert_eq!(after.version(), 1, "a rejection must not publish");
    assert_eq!(after.hash(), before.hash());
    assert_eq!(after.section::<Greeting>(), before.section::<Greeting>());
    let status = accessor.status();
    let last = status.last_reload.expect("reload recorded");
    assert_eq!(last.outcome, "rejected");
    assert_eq!(last.errors, errors.as_slice());
    match events.try_recv() {
        Ok(Event::Rejected {
            version: 1,
            errors: e,
            ..
        }) => assert_eq!(e, errors),
        other => panic!("expected a Rejected event, got {other:?}"),
    }
    let rendered = dir.scrub(&errors.to_string());
    (errors, rendered)
}

#[test]
fn unparseable_toml_names_file_and_position() {
    let (errors, rendered) = reject_after_edit("[greeting\nmessage = \"hi\"\n");
    assert!(errors.has(ErrorKind::Parse));
    insta::assert_snapshot!(rendered);
}

#[test]
fn unparseable_yaml_and_json_beside_each_other_are_both_reported() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    dir.write("b.yaml", "greeting:\n  message: [unclosed\n");
    dir.write("c.json", "{\"limits\": {\"max_body_bytes\": 1,}}");
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    assert_eq!(errors.len(), 2);
    assert_eq!(accessor.load().version(), 1);
    insta::assert_snapshot!(dir.scrub(&errors.to_string()));
}

#[test]
fn missing_required_key_names_the_key() {
    let (errors, rendered) = reject_after_edit(&app_with("max_body_bytes = 1048576\n", ""));
    let e = &errors.as_slice()[0];
    assert_eq!(e.kind(), ErrorKind::MissingKey);
    assert_eq!(e.key(), Some("limits.max_body_bytes"));
    assert_eq!(e.pointer().as_deref(), Some("/limits/max_body_bytes"));
    insta::assert_snapshot!(rendered);
}

#[test]
fn an_empty_file_is_rejected_not_replaced_by_nothing() {
    // A file seen empty mid-save must never publish.
    let (errors, rendered) = reject_after_edit("");
    // One error per required section, naming the keys it requires; `features` has
    // defaults for every key, so it needs no source.
    let keys: Vec<_> = errors.iter().filter_map(|e| e.key()).collect();
    assert_eq!(keys, ["greeting", "limits", "upstream"], "{errors}");
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::MissingKey));
    insta::assert_snapshot!(rendered);
}

#[test]
fn wrong_type_says_what_was_expected_and_found() {
    let (errors, rendered) = reject_after_edit(&app_with(
        "max_body_bytes = 1048576",
        "max_body_bytes = \"lots\"",
    ));
    let e = &errors.as_slice()[0];
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert_eq!(e.key(), Some("limits.max_body_bytes"));
    assert!(matches!(e.source(), Some(SourceName::File(p)) if p.ends_with("app.toml")));
    insta::assert_snapshot!(rendered);
}

#[test]
fn schema_violations_are_all_reported_at_once() {
    let text = app_with("max_body_bytes = 1048576", "max_body_bytes = 0")
        .replacen(
            "request_timeout_ms = 5000",
            "request_timeout_ms = 999999",
            1,
        )
        .replacen(
            "message = \"hello\"",
            "message = \"\"\ncolour = \"blue\"",
            1,
        );
    let (errors, rendered) = reject_after_edit(&text);
    assert_eq!(errors.len(), 4, "{errors}");
    let keys: Vec<_> = errors.iter().filter_map(|e| e.key()).collect();
    for key in [
        "limits.max_body_bytes",
        "limits.request_timeout_ms",
        "greeting.message",
        "greeting.colour",
    ] {
        assert!(keys.contains(&key), "no error for {key}: {errors}");
    }
    insta::assert_snapshot!(rendered);
}

#[test]
fn failing_custom_validate_reports_each_field() {
    let text = app_with("url = \"https://upstream.example\"", "url = \"ftp://nope\"").replacen(
        "api_key = \"s3cr3t-k3y-value\"",
        "api_key = \"short\"",
        1,
    );
    let (errors, rendered) = reject_after_edit(&text);
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Validation));
    assert!(
        !rendered.contains("short"),
        "the secret's value leaked: {rendered}"
    );
    insta::assert_snapshot!(rendered);
}

#[test]
fn a_missing_required_file_or_dir_is_named() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    std::fs::remove_file(dir.file("app.toml")).unwrap();
    // The folder is now empty: it says so once (not a missing key per field); nothing
    // is published.
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    assert!(errors.has(ErrorKind::SourceMissing) && errors.len() == 1);
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");

    let gone = dir.path().join("gone");
    let errors = EaCAccessor::builder()
        .section::<Greeting>()
        .source(Dir::new(&gone))
        .source(eac_accessor::source::File::new(dir.file("absent.yaml")))
        .build()
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    insta::assert_snapshot!(dir.scrub(&errors.to_string()));
}

#[test]
fn a_vetoing_readiness_hook_rejects_with_its_reason() {
    let dir = ConfigDir::with_app();
    let accessor = EaCAccessor::builder()
        .section::<Limits>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .readiness("pool-resize", |candidate| {
            let limits = candidate.section::<Limits>();
            if limits.request_timeout_ms < 100 {
                Err(format!(
                    "cannot drain connections in {} ms",
                    limits.request_timeout_ms
                ))
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    dir.write(
        "app.toml",
        &app_with("request_timeout_ms = 5000", "request_timeout_ms = 50"),
    );
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Veto);
    assert_eq!(accessor.load().section::<Limits>().request_timeout_ms, 5000);
    insta::assert_snapshot!(errors.to_string());

    // The hook passes again: the next valid candidate publishes.
    dir.write(
        "app.toml",
        &app_with("request_timeout_ms = 5000", "request_timeout_ms = 500"),
    );
    assert_eq!(accessor.reload(Origin::Refresh).unwrap().version(), 2);
}

#[test]
fn build_fails_fast_with_every_error() {
    let dir = ConfigDir::new();
    dir.write(
        "a.toml",
        "[limits]\nmax_body_bytes = -1\nrequest_timeout_ms = 1\n",
    );
    dir.write(
        "b.toml",
        "[greeting]\nmessage = 5\n[upstream]\nurl = \"x\"\n",
    );
    let errors = accessor_for(&dir).unwrap_err();
    let keys: Vec<_> = errors.iter().filter_map(|e| e.key()).collect();
    assert_eq!(
        keys,
        [
            "greeting.message",
            "limits.max_body_bytes",
            "upstream.api_key"
        ],
        "{errors}"
    );
    insta::assert_snapshot!(dir.scrub(&errors.to_string()));
}

#[test]
fn errors_serialize_with_kind_key_pointer_source_and_message() {
    let (errors, _) = reject_after_edit(&app_with(
        "request_timeout_ms = 5000",
        "request_timeout_ms = 0",
    ));
    let json = serde_json::to_value(&errors).unwrap();
    let e = &json[0];
    assert_eq!(e["kind"], "schema");
    assert_eq!(e["key"], "limits.request_timeout_ms");
    assert_eq!(e["pointer"], "/limits/request_timeout_ms");
    assert!(e["source"].as_str().unwrap().contains("app.toml"));
    assert_eq!(e["message"], "expected a value >= 1, found integer 0");
}
