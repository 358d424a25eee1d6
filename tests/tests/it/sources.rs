//! Sources: merge order, env overlay, optional files, defaults, provenance.

use eac_accessor::source::{Defaults, Dir, Env, File, Format, Memory};
use eac_accessor::{EaCAccessor, ErrorKind, Origin, SourceName};
use eac_tests::{ConfigDir, Features, Greeting, Limits};
use serde_json::json;

#[test]
fn env_overlay_beats_files_and_files_beat_defaults() {
    let dir = ConfigDir::new();
    dir.write(
        "app.toml",
        "[greeting]\nmessage = \"from file\"\n[limits]\nmax_body_bytes = 10\n",
    );
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .section::<Limits>()
        .section::<Features>()
        .source(Defaults::new(&json!({
            "greeting": {"message": "from defaults"},
            "limits": {"max_body_bytes": 1, "request_timeout_ms": 1000},
            "features": {"shout": false},
        })))
        .source(Dir::new(dir.path()))
        .source(Env::prefixed("APP_").vars([
            ("APP_GREETING__MESSAGE", "from env"),
            ("APP_FEATURES__SHOUT", "true"),
            ("UNRELATED", "x"),
        ]))
        .build()
        .unwrap();
    let s = accessor.load();
    assert_eq!(s.section::<Greeting>().message, "from env");
    assert!(s.section::<Features>().shout);
    assert_eq!(
        s.section::<Limits>().max_body_bytes,
        10,
        "file beats defaults"
    );
    assert_eq!(
        s.section::<Limits>().request_timeout_ms,
        1000,
        "defaults fill the gap"
    );
}

#[test]
fn a_bad_env_var_is_named_in_the_error() {
    let dir = ConfigDir::with_app();
    let errors = EaCAccessor::builder()
        .section::<Limits>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .source(Env::prefixed("APP_").vars([("APP_LIMITS__MAX_BODY_BYTES", "huge")]))
        .build()
        .unwrap_err();
    let e = &errors.as_slice()[0];
    assert_eq!(
        e.source(),
        Some(&SourceName::EnvVar("APP_LIMITS__MAX_BODY_BYTES".into()))
    );
    insta::assert_snapshot!(
        errors.to_string(),
        @r#"configuration rejected: `limits.max_body_bytes` in env var `APP_LIMITS__MAX_BODY_BYTES`: expected integer, found string "huge""#
    );
}

#[test]
fn an_optional_file_that_is_missing_adds_nothing_and_is_read_once_it_exists() {
    let dir = ConfigDir::with_app();
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(File::new(dir.file("app.toml")))
        .source(File::new(dir.file("local.yaml")).optional())
        .build()
        .unwrap();
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");
    dir.write("local.yaml", "greeting:\n  message: local\n");
    accessor.reload(Origin::Refresh).unwrap();
    assert_eq!(accessor.load().section::<Greeting>().message, "local");
}

#[test]
fn dir_merges_in_file_name_order_and_skips_dotfiles() {
    let dir = ConfigDir::with_app();
    dir.write("zz-override.json", r#"{"greeting": {"message": "last"}}"#);
    dir.write("m-middle.yml", "greeting:\n  message: middle\n");
    dir.write(".app.toml.swp", "garbage that would not parse = = =");
    dir.write("app.toml~", "garbage = = =");
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();
    assert_eq!(accessor.load().section::<Greeting>().message, "last");
}

#[test]
fn provenance_names_the_file_that_set_the_bad_value() {
    let dir = ConfigDir::with_app();
    dir.write("b-override.yaml", "limits:\n  request_timeout_ms: 0\n");
    let errors = EaCAccessor::builder()
        .section::<Limits>()
        // The fixture's other sections are not this test's concern.
        .allow_unknown_keys(true)
        .source(Dir::new(dir.path()))
        .build()
        .unwrap_err();
    let e = &errors.as_slice()[0];
    assert_eq!(
        e.source(),
        Some(&SourceName::File(dir.file("b-override.yaml")))
    );
    assert_eq!(e.key(), Some("limits.request_timeout_ms"));
}

#[test]
fn a_memory_document_can_be_replaced_between_reloads() {
    let doc = Memory::new(
        "inline",
        Format::Json,
        r#"{"greeting": {"message": "one"}}"#,
    );
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .source(doc.clone())
        .build()
        .unwrap();
    doc.set(r#"{"greeting": {"message": "two"}}"#);
    assert_eq!(accessor.reload(Origin::Refresh).unwrap().version(), 2);
    assert_eq!(accessor.load().section::<Greeting>().message, "two");
}

#[test]
fn defaults_that_are_not_a_map_fail_clearly() {
    let errors = EaCAccessor::builder()
        .section::<Greeting>()
        .source(Defaults::new(&42))
        .build()
        .unwrap_err();
    assert_eq!(errors.as_slice()[0].kind(), ErrorKind::Parse);
    assert_eq!(errors.as_slice()[0].source(), Some(&SourceName::Defaults));
}
