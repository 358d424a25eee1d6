//! What `#[derive(EaCSection)]` implements: path, secrets, validation, schema, `Debug`.

// The sections here are read through `Debug`, which, like a derived one, does not count.
#![allow(dead_code)]

use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, FieldErrors, Origin};
use schemars::JsonSchema;
use serde::Deserialize;

/// The service this one calls.
#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "upstream", debug)]
struct Upstream {
    /// Where requests go.
    url: String,
    /// Sent as a bearer token.
    #[eac(secret)]
    api_key: String,
    /// Per-request timeout.
    #[schemars(range(min = 1, max = 60_000))]
    timeout_ms: u32,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
struct HttpConfig {
    port: u16,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "app", debug)]
#[serde(rename_all = "kebab-case")]
struct App {
    primary_upstream: Upstream,
    #[serde(rename = "backup")]
    fallback_upstream: Option<Upstream>,
    #[eac(secret)]
    #[serde(rename(deserialize = "session-secret"))]
    session_key: String,
    #[serde(flatten)]
    tls: Tls,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(debug)]
struct Tls {
    #[eac(secret)]
    tls_key: String,
}

#[test]
fn path_is_given_or_the_snake_case_type_name() {
    assert_eq!(Upstream::PATH, "upstream");
    assert_eq!(HttpConfig::PATH, "http_config");
}

#[test]
fn secret_paths_follow_serde_names_and_nested_sections() {
    assert_eq!(Upstream::secret_paths(), ["api_key"]);
    assert!(HttpConfig::secret_paths().is_empty());
    // A field whose type is a section brings its secrets, under the field's key, and so
    // does an `Option` of one.
    assert_eq!(
        App::secret_paths(),
        [
            "primary-upstream.api_key",
            "backup.api_key",
            "session-secret",
            "tls_key"
        ]
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let upstream = Upstream {
        url: "http://up".to_owned(),
        api_key: "hunter2".to_owned(),
        timeout_ms: 5,
    };
    let debug = format!("{upstream:?}");
    assert_eq!(
        debug,
        r#"Upstream { url: "http://up", api_key: [redacted], timeout_ms: 5 }"#
    );
    let pretty = format!("{upstream:#?}");
    assert!(!pretty.contains("hunter2"), "{pretty}");
    assert!(pretty.contains("api_key: [redacted]"), "{pretty}");
}

#[test]
fn nested_sections_redact_their_own_secrets() {
    let app = App {
        primary_upstream: Upstream {
            url: "u".to_owned(),
            api_key: "k1".to_owned(),
            timeout_ms: 1,
        },
        fallback_upstream: None,
        session_key: "k2".to_owned(),
        tls: Tls {
            tls_key: "k3".to_owned(),
        },
    };
    let debug = format!("{app:?}");
    for secret in ["k1", "k2", "k3"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn secrets_are_redacted_in_the_snapshot_document() -> Result<(), eac_accessor::Errors> {
    let accessor = EaCAccessor::builder()
        .section::<Upstream>()
        .source(Memory::new(
            "app",
            Format::Toml,
            "[upstream]\nurl = \"http://up\"\napi_key = \"hunter2\"\ntimeout_ms = 5\n",
        ))
        .build()?;
    assert_eq!(accessor.secret_paths(), ["upstream.api_key"]);
    let redacted = accessor.load().redacted_document().to_string();
    assert!(!redacted.contains("hunter2"), "{redacted}");
    Ok(())
}

#[derive(Debug, PartialEq)]
struct NotDebugged;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "limits", validate = "checks::limits")]
struct Limits {
    max_body_bytes: u64,
    request_timeout_ms: u64,
}

mod checks {
    use super::*;

    pub(super) fn limits(limits: &Limits) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        if limits.request_timeout_ms > 10_000 && limits.max_body_bytes < 1024 {
            errors.add(
                "request_timeout_ms",
                "a long timeout needs max_body_bytes >= 1024",
            );
        }
        errors.into_result()
    }
}

#[test]
fn validate_runs_on_every_candidate() -> Result<(), Box<dyn std::error::Error>> {
    let doc = Memory::new(
        "app",
        Format::Toml,
        "[limits]\nmax_body_bytes = 10\nrequest_timeout_ms = 100\n",
    );
    let accessor = EaCAccessor::builder()
        .section::<Limits>()
        .source(doc.clone())
        .build()?;
    doc.set("[limits]\nmax_body_bytes = 10\nrequest_timeout_ms = 20000\n");
    let rejected = accessor
        .reload(Origin::Refresh)
        .expect_err("the check refuses it");
    assert_eq!(
        rejected.as_slice()[0].key(),
        Some("limits.request_timeout_ms")
    );
    assert_eq!(accessor.load().version(), 1);
    Ok(())
}

#[test]
fn the_schema_is_schemars_with_doc_comments() {
    insta::assert_json_snapshot!("upstream_schema", Upstream::schema());
}

#[test]
fn the_schema_of_nested_sections_uses_serde_names() {
    insta::assert_json_snapshot!("app_schema", App::schema());
}

#[test]
fn the_schema_rejects_a_candidate_before_it_is_published() -> Result<(), eac_accessor::Errors> {
    let doc = Memory::new(
        "app",
        Format::Toml,
        "[upstream]\nurl = \"u\"\napi_key = \"k\"\ntimeout_ms = 5\n",
    );
    let accessor = EaCAccessor::builder()
        .section::<Upstream>()
        .source(doc.clone())
        .build()?;
    doc.set("[upstream]\nurl = \"u\"\napi_key = \"k\"\ntimeout_ms = 0\n");
    let rejected = accessor
        .reload(Origin::Refresh)
        .expect_err("below the minimum");
    assert_eq!(rejected.as_slice()[0].key(), Some("upstream.timeout_ms"));
    Ok(())
}

/// A section generic over its payload: every instance sits at the same path.
#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "feature", debug)]
struct Feature<T> {
    enabled: bool,
    #[eac(secret)]
    payload: T,
}

#[test]
fn generic_sections() -> Result<(), eac_accessor::Errors> {
    assert_eq!(<Feature<u8>>::PATH, "feature");
    assert_eq!(<Feature<String>>::secret_paths(), ["payload"]);
    let accessor = EaCAccessor::builder()
        .section::<Feature<u32>>()
        .source(Memory::new(
            "app",
            Format::Toml,
            "[feature]\nenabled = true\npayload = 7\n",
        ))
        .build()?;
    let feature = accessor.load().section::<Feature<u32>>().payload;
    assert_eq!(feature, 7);
    // The secret payload needs no `Debug`.
    let not_debugged = Feature {
        enabled: true,
        payload: NotDebugged,
    };
    assert_eq!(
        format!("{not_debugged:?}"),
        "Feature { enabled: true, payload: [redacted] }"
    );
    assert_eq!(not_debugged.payload, NotDebugged);
    Ok(())
}

/// A section that derives `Debug` as usual, its secret typed `Secret<T>`.
#[derive(Debug, Deserialize, JsonSchema, EaCSection)]
struct Custom {
    user: String,
    token: eac_accessor::Secret<String>,
}

#[test]
fn derive_debug_is_the_users_and_a_secret_typed_secret_stays_hidden() {
    let custom = Custom {
        user: "ada".to_owned(),
        token: eac_accessor::Secret::from("abc".to_owned()),
    };
    assert_eq!(
        format!("{custom:?}"),
        r#"Custom { user: "ada", token: [redacted] }"#
    );
    assert_eq!(Custom::secret_paths(), ["token"]);
}

/// Takes any extra key, and ignores it.
#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "labels", allow_unknown_keys)]
struct Labels {
    team: String,
    token: eac_accessor::Secret<String>,
}

#[test]
fn allow_unknown_keys_sets_the_trait_constant() -> Result<(), eac_accessor::Errors> {
    const { assert!(Labels::ALLOW_UNKNOWN_KEYS && !Upstream::ALLOW_UNKNOWN_KEYS) };
    let doc = Memory::new(
        "m",
        Format::Toml,
        "[labels]\nteam = \"core\"\ntoken = \"t\"\nextra = 1\n",
    );
    let accessor = EaCAccessor::builder()
        .section::<Labels>()
        .source(doc)
        .build()?;
    assert_eq!(accessor.load().section::<Labels>().team, "core");
    assert!(accessor.load().document()["labels"].get("extra").is_none());
    Ok(())
}

#[test]
fn a_field_typed_secret_is_a_secret_path() {
    assert_eq!(Labels::secret_paths(), ["token"]);
}
