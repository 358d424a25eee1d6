//! Which source set what: a missing key blamed on its section's sources, env values
//! typed by the schema, and `Snapshot::source_of`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use eac_accessor::source::{Dir, Env};
use eac_accessor::{EaCAccessor, ErrorKind, SourceName};
use eac_tests::{APP_TOML, ConfigDir, Features, Greeting, Limits, SECRET, Upstream, app_with};
use serde_json::json;

use crate::four_sections;

fn accessor(dir: &ConfigDir, env: Env) -> Result<EaCAccessor, eac_accessor::Errors> {
    four_sections()
        .source(Dir::new(dir.path()))
        .source(env)
        .build()
}

#[test]
fn a_missing_key_is_blamed_on_its_section_never_on_a_siblings_variable() {
    // The error names the section's sources, not APP_UPSTREAM__URL, which sets a sibling.
    let dir = ConfigDir::new();
    dir.write(
        "app.toml",
        &app_with(&format!("api_key = \"{SECRET}\"\n"), ""),
    );
    let env = Env::prefixed("APP_").vars([("APP_UPSTREAM__URL", "https://from-env.example")]);
    let errors = accessor(&dir, env).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let e = &errors.as_slice()[0];
    assert_eq!(e.kind(), ErrorKind::MissingKey);
    assert_eq!(e.key(), Some("upstream.api_key"));
    assert_eq!(e.source(), Some(&SourceName::File(dir.file("app.toml"))));
    let rendered = dir.scrub(&e.to_string());
    assert!(!rendered.contains("APP_UPSTREAM__URL"), "{rendered}");
    assert_eq!(rendered.matches("missing").count(), 1, "{rendered}");
    insta::assert_snapshot!(rendered, @"`upstream.api_key`: missing (required by section `upstream`, set by file `[dir]/app.toml` and env vars `APP_*`)");

    // The file alone: it is the one to name.
    let env = Env::prefixed("APP_").vars::<&str, &str>([]);
    let errors = accessor(&dir, env).unwrap_err();
    insta::assert_snapshot!(dir.scrub(&errors.to_string()), @"configuration rejected: `upstream.api_key`: missing (required by section `upstream`, set by file `[dir]/app.toml`)");
}

#[test]
fn a_section_no_source_sets_is_one_error() {
    let dir = ConfigDir::new();
    let without_upstream = APP_TOML.split("[upstream]").next().unwrap();
    dir.write("app.toml", without_upstream);
    let errors = accessor(&dir, Env::prefixed("APP_").vars::<&str, &str>([])).unwrap_err();
    assert_eq!(errors.len(), 1);
    let e = &errors.as_slice()[0];
    assert_eq!(
        (e.kind(), e.key()),
        (ErrorKind::MissingKey, Some("upstream"))
    );
    assert_eq!(e.source(), None);
    insta::assert_snapshot!(e.to_string(), @"`upstream`: missing (no source sets section `upstream`, which requires `url` and `api_key`)");
}

#[test]
fn env_values_are_read_as_the_schema_types_them() {
    // A numeric-looking secret is read as the string its schema says.
    let dir = ConfigDir::with_app();
    let env = Env::prefixed("APP_").vars([
        ("APP_UPSTREAM__API_KEY", "12345678901234567"),
        ("APP_GREETING__MESSAGE", "42"),
        ("APP_LIMITS__MAX_BODY_BYTES", "2048"),
        ("app_features__SHOUT", "TRUE"),
    ]);
    let accessor = accessor(&dir, env).unwrap();
    let snapshot = accessor.load();
    assert_eq!(snapshot.section::<Upstream>().api_key, "12345678901234567");
    assert_eq!(snapshot.section::<Greeting>().message, "42");
    assert_eq!(snapshot.section::<Limits>().max_body_bytes, 2048);
    assert!(snapshot.section::<Features>().shout);
}

#[test]
fn an_env_value_of_the_wrong_type_names_the_variable_and_the_type() {
    let dir = ConfigDir::with_app();
    let env = Env::prefixed("APP_").vars([("APP_FEATURES__SHOUT", "loudly")]);
    let errors = accessor(&dir, env).unwrap_err();
    let e = &errors.as_slice()[0];
    assert_eq!(
        e.source(),
        Some(&SourceName::EnvVar("APP_FEATURES__SHOUT".into()))
    );
    insta::assert_snapshot!(e.to_string(), @r#"`features.shout` in env var `APP_FEATURES__SHOUT`: expected boolean, found string "loudly""#);
}

#[test]
fn a_variable_that_is_not_utf8_is_rejected_at_start_naming_it() {
    // The file's value must not win silently over a variable that cannot be read.
    let dir = ConfigDir::with_app();
    let latin1 = OsStr::from_bytes(b"caf\xe9");
    let env = Env::prefixed("APP_").vars_os([
        ("APP_GREETING__MESSAGE", latin1),
        // Not UTF-8 either, but no section's key: ignored.
        ("APP_STATE_DIR", latin1),
    ]);
    let errors = accessor(&dir, env).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let e = &errors.as_slice()[0];
    assert_eq!(
        e.source(),
        Some(&SourceName::EnvVar("APP_GREETING__MESSAGE".into()))
    );
    insta::assert_snapshot!(e.to_string(), @"`greeting.message` in env var `APP_GREETING__MESSAGE`: the value is not valid UTF-8; set it as UTF-8 text");
}

#[test]
fn source_of_names_the_winner_and_the_sources_it_overrode() {
    let dir = ConfigDir::with_app();
    dir.write("b-local.yaml", "limits:\n  max_body_bytes: 4096\n");
    let env = Env::prefixed("APP_").vars([
        ("APP_LIMITS__MAX_BODY_BYTES", "2048"),
        ("APP_UPSTREAM__API_KEY", "env-s3cr3t-value"),
    ]);
    let accessor = accessor(&dir, env).unwrap();
    let snapshot = accessor.load();

    let answer = snapshot.source_of("limits.max_body_bytes").unwrap();
    assert_eq!(answer.value, json!(2048));
    assert_eq!(
        answer.source,
        SourceName::EnvVar("APP_LIMITS__MAX_BODY_BYTES".into())
    );
    let lost: Vec<_> = answer
        .overridden
        .iter()
        .map(|o| (&o.source, &o.value))
        .collect();
    assert_eq!(
        lost,
        [
            (&SourceName::File(dir.file("b-local.yaml")), &json!(4096)),
            (&SourceName::File(dir.file("app.toml")), &json!(1_048_576)),
        ]
    );
    insta::assert_snapshot!(dir.scrub(&answer.to_string()), @"`limits.max_body_bytes` = 2048, set by env var `APP_LIMITS__MAX_BODY_BYTES`, overriding 4096 from file `[dir]/b-local.yaml`, and 1048576 from file `[dir]/app.toml`");

    // A key one file sets, overridden by nothing.
    let answer = snapshot.source_of("limits.request_timeout_ms").unwrap();
    assert_eq!(answer.source, SourceName::File(dir.file("app.toml")));
    assert!(answer.overridden.is_empty());

    // A secret: every value redacted, in every form.
    let answer = snapshot.source_of("upstream.api_key").unwrap();
    let shown = format!(
        "{answer} {answer:?} {}",
        serde_json::to_string(&answer).unwrap()
    );
    assert!(
        !shown.contains(SECRET) && !shown.contains("env-s3cr3t-value"),
        "{shown}"
    );
    assert_eq!(answer.value, json!("[redacted]"));
    assert_eq!(answer.overridden[0].value, json!("[redacted]"));
    insta::assert_json_snapshot!(serde_json::to_value(&answer).unwrap().to_string().replace(&dir.path().display().to_string(), "[dir]"), @r#""{\"key\":\"upstream.api_key\",\"overridden\":[{\"source\":\"file `[dir]/app.toml`\",\"value\":\"[redacted]\"}],\"source\":\"env var `APP_UPSTREAM__API_KEY`\",\"value\":\"[redacted]\"}""#);

    // A table: every source that set something in it; nothing for an absent key.
    let answer = snapshot.source_of("limits").unwrap();
    assert_eq!(answer.overridden.len(), 2);
    assert!(snapshot.source_of("limits.nope").is_none());
    assert!(snapshot.source_of("htpp").is_none());
}
