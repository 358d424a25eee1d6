//! A secret's value never appears in errors, events, status or Debug output.

use eac_accessor::{
    Candidate, EaCAccessor, Errors, Origin,
    source::{Dir, Env},
};
use eac_tests::{ConfigDir, SECRET, Upstream, app_with_api_key};

use crate::accessor_for;

fn assert_hidden(what: &str, text: &str, secret: &str) {
    assert!(!text.contains(secret), "{what} leaked the secret: {text}");
}

/// The errors of a reload, from the standard files, after `api_key` was set to `value`
/// (TOML as written), which must be refused.
fn refused_api_key(value: &str) -> Errors {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    dir.write("app.toml", &app_with_api_key(value));
    accessor.reload(Origin::Refresh).unwrap_err()
}

#[test]
fn a_secret_of_the_wrong_type_is_reported_without_its_value() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let mut events = accessor.events();
    // The secret becomes an array of strings: wrong type, and jsonschema would echo it.
    let leaked = "n3w-s3cr3t-l34k";
    dir.write("app.toml", &app_with_api_key(&format!("[\"{leaked}\"]")));
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    let e = &errors.as_slice()[0];
    assert_eq!(e.key(), Some("upstream.api_key"));

    assert_hidden("Display", &errors.to_string(), leaked);
    assert_hidden("Debug", &format!("{errors:?}"), leaked);
    assert_hidden("JSON", &serde_json::to_string(&errors).unwrap(), leaked);
    assert_hidden(
        "status",
        &serde_json::to_string(&accessor.status()).unwrap(),
        leaked,
    );
    assert_hidden(
        "event",
        &format!("{:?}", events.try_recv().unwrap()),
        leaked,
    );
    insta::assert_snapshot!(dir.scrub(&errors.to_string()));
}

#[test]
fn a_secret_breaking_a_length_rule_is_reported_without_its_value() {
    let errors = refused_api_key("\"tiny1\"");
    assert_hidden("Display", &errors.to_string(), "tiny1");
}

#[test]
fn a_secret_from_an_env_var_is_never_shown() {
    let dir = ConfigDir::with_app();
    // The field is a string, so the variable is one: too short for `validate`.
    let leaked = "s3cr7";
    let errors = EaCAccessor::builder()
        .section::<Upstream>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .source(Env::prefixed("APP_").vars([("APP_UPSTREAM__API_KEY", leaked)]))
        .build()
        .unwrap_err();
    let text = format!("{errors} {errors:?}");
    assert_hidden("env error", &text, leaked);
    assert!(
        text.contains("APP_UPSTREAM__API_KEY"),
        "the variable is named: {text}"
    );
}

#[test]
fn a_broken_file_around_a_secret_does_not_quote_it() {
    // An unterminated string: TOML's own message would quote the line.
    let errors = refused_api_key("\"unterminated-s3cr3t");
    assert_hidden(
        "parse error",
        &format!("{errors} {errors:?}"),
        "unterminated-s3cr3t",
    );
}

/// A preview of an overlay that sets a secret reports "secret set" whatever the value —
/// the right guess and a wrong one give the same report, so a preview is no oracle for
/// the current secret.
#[test]
fn a_preview_never_tells_whether_a_guess_equals_the_secret() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let report = |overlay: serde_json::Value| {
        let preview = accessor.preview(Candidate::Overlay(overlay));
        serde_json::to_value(&preview).unwrap()
    };
    let guess = |key: &str| serde_json::json!({"upstream": {"api_key": key}});
    let right = report(guess(SECRET));
    let wrong = report(guess("a-wrong-guess-of-16"));
    assert_eq!(right, wrong);
    insta::assert_snapshot!(
        accessor.preview(Candidate::Overlay(guess(SECRET))).diff.to_string(),
        @r#"~ upstream.api_key: "[redacted]" → "[redacted]"  [safe: secret set (never compared with the current value)]"#
    );

    // The same beside a change that is not secret.
    let with_greeting = |key: &str| serde_json::json!({"upstream": {"api_key": key}, "greeting": {"message": "other"}});
    assert_eq!(
        report(with_greeting(SECRET)),
        report(with_greeting("a-wrong-guess-of-16"))
    );
}
