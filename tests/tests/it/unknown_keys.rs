//! Only what a registered section owns is configuration: one rule for unknown keys in
//! files, overlays and the environment.

use eac_accessor::source::{Dir, Env};
use eac_accessor::{Candidate, EaCAccessor, EaCSection, ErrorKind, Origin, SourceName};
use eac_tests::{APP_TOML, ConfigDir, Limits, SECRET};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::{accessor_for, four_sections};

/// `[http]`: a section for the `[htpp]` typo to be near.
#[derive(Deserialize, JsonSchema, EaCSection)]
struct Http {
    port: u16,
}

/// A section that takes any extra key (and ignores it).
#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "labels", allow_unknown_keys)]
struct Labels {
    team: String,
}

const HTTP_TOML: &str = "[http]\nport = 8080\n";

fn five_sections(dir: &ConfigDir, env: Env) -> Result<EaCAccessor, eac_accessor::Errors> {
    four_sections()
        .section::<Http>()
        .source(Dir::new(dir.path()))
        .source(env)
        .build()
}

fn with_http() -> ConfigDir {
    let dir = ConfigDir::with_app();
    dir.write("http.toml", HTTP_TOML);
    dir
}

#[test]
fn a_misspelled_section_is_rejected_with_the_nearest_name() {
    let dir = with_http();
    let accessor = five_sections(&dir, Env::prefixed("APP_").vars::<&str, &str>([])).unwrap();
    assert_eq!(accessor.load().section::<Http>().port, 8080);
    // A misspelled table is not a new version that nothing reads.
    dir.write("http.toml", "[htpp]\nport = 9090\n[http]\nport = 8080\n");
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    assert_eq!(accessor.load().version(), 1);
    let e = &errors.as_slice()[0];
    assert_eq!(e.kind(), ErrorKind::UnknownKey);
    assert_eq!(e.key(), Some("htpp"));
    assert_eq!(e.source(), Some(&SourceName::File(dir.file("http.toml"))));
    insta::assert_snapshot!(dir.scrub(&errors.to_string()), @"configuration rejected: `htpp` in file `[dir]/http.toml`: unknown section: no registered section is at this key — did you mean `http`?");
}

#[test]
fn a_misspelled_field_is_rejected_with_the_nearest_field_and_its_value_never_shown() {
    // `Upstream` has no `deny_unknown_fields`: the typo must not go live silently.
    let dir = ConfigDir::new();
    let typo_value = "typo-s3cr3t-value";
    dir.write(
        "app.toml",
        &APP_TOML.replace(
            &format!("api_key = \"{SECRET}\""),
            &format!("api_key = \"{SECRET}\"\napi_kee = \"{typo_value}\""),
        ),
    );
    let errors = accessor_for(&dir).unwrap_err();
    let rendered = dir.scrub(&errors.to_string());
    assert!(!rendered.contains(typo_value), "{rendered}");
    insta::assert_snapshot!(rendered, @"configuration rejected: `upstream.api_kee` in file `[dir]/app.toml`: unknown key: section `upstream` has no field of that name — did you mean `api_key`?");

    // A preview overlay with the same typo: rejected, and its value is nowhere.
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let preview = accessor.preview(Candidate::Overlay(
        json!({"upstream": {"api_kee": typo_value}}),
    ));
    assert!(!preview.would_publish);
    assert_eq!(preview.errors[0].key(), Some("upstream.api_kee"));
    assert!(
        preview.errors[0]
            .message()
            .contains("did you mean `api_key`?")
    );
    let shown = format!("{} {preview:?}", serde_json::to_string(&preview).unwrap());
    assert!(!shown.contains(typo_value), "{shown}");
    assert!(preview.diff.is_empty(), "{}", preview.diff);
}

#[test]
fn a_literal_dotted_key_in_a_preview_overlay_is_rejected() {
    let dir = ConfigDir::with_app();
    let accessor = accessor_for(&dir).unwrap();
    let preview = accessor.preview(Candidate::Overlay(json!({"upstream.api_key": "X-dotted"})));
    assert!(!preview.would_publish && !preview.unchanged);
    assert_eq!(preview.errors.len(), 1);
    assert_eq!(preview.errors[0].kind(), ErrorKind::UnknownKey);
    assert!(preview.diff.is_empty());
    assert!(
        !serde_json::to_string(&preview)
            .unwrap()
            .contains("X-dotted")
    );
    insta::assert_snapshot!(preview.errors[0].to_string(), @r#"`upstream.api_key` in document `preview overlay`: a key with a dot is not a path here: nest it as a table (`{"upstream": {"api_key": ..}}`, not `{"upstream.api_key": ..}`)"#);
}

#[test]
fn env_variables_that_map_to_no_section_key_are_never_shown() {
    // The service's own SVC_ variables never become configuration.
    let dir = ConfigDir::with_app();
    let state = ConfigDir::new();
    let token = "adm1n-t0ken-value";
    let env = Env::prefixed("SVC_").vars([
        ("SVC_ADMIN_TOKEN", token),
        ("SVC_CONFIG_DIR", "/etc/svc"),
        ("SVC_UPSTREAM__API_KEE", "typo-in-env"),
        ("SVC_LIMITS__MAX_BODY_BYTES", "2048"),
    ]);
    let accessor = four_sections()
        .source(Dir::new(dir.path()))
        .source(env)
        .durable_history(state.path())
        .build()
        .unwrap();
    let snapshot = accessor.load_full();
    assert_eq!(snapshot.section::<Limits>().max_body_bytes, 2048);
    let document = snapshot.document().to_string();
    for hidden in [
        token,
        "/etc/svc",
        "typo-in-env",
        "admin_token",
        "config_dir",
    ] {
        assert!(!document.contains(hidden), "{hidden} in {document}");
    }

    // A preview overlay touching `admin_token` is an unknown section: the real token is
    // in no answer, and neither is the overlay's value.
    let preview = accessor.preview(Candidate::Overlay(json!({"admin_token": "guess"})));
    assert!(!preview.would_publish);
    assert_eq!(preview.errors[0].key(), Some("admin_token"));
    let shown = format!("{} {preview:?}", serde_json::to_string(&preview).unwrap());
    assert!(
        !shown.contains(token) && !shown.contains("guess"),
        "{shown}"
    );

    // The history, on disk too, holds registered sections only.
    let history = serde_json::to_string(&accessor.history()).unwrap();
    let entries = format!("{history} {:?}", accessor.history());
    assert!(!entries.contains(token), "{entries}");
    let mut files = 0;
    for entry in std::fs::read_dir(state.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(path).unwrap();
        files += 1;
        assert!(!String::from_utf8_lossy(&bytes).contains(token));
    }
    assert!(files > 0, "the durable history was written");
    let redacted = snapshot.redacted_document().to_string();
    assert!(!redacted.contains(token));

    // Another value of an ignored variable is the same configuration.
    let other = four_sections()
        .source(Dir::new(dir.path()))
        .source(Env::prefixed("SVC_").vars([
            ("SVC_ADMIN_TOKEN", "another-token"),
            ("SVC_LIMITS__MAX_BODY_BYTES", "2048"),
        ]))
        .build()
        .unwrap();
    assert_eq!(snapshot.hash(), other.load().hash());
}

#[test]
fn allowed_unknown_keys_are_ignored_never_hashed_stored_or_diffed() {
    let clean = ConfigDir::with_app();
    let noisy = ConfigDir::new();
    let junk = "junk-v4lue";
    noisy.write(
        "app.toml",
        &format!(
            "\"$schema\" = \"./schema.json\"\n{}\napi_kee = \"{junk}\"\n[htpp]\nport = \"{junk}\"\n",
            APP_TOML.trim_end()
        ),
    );
    let build = |dir: &ConfigDir, allow: bool| {
        four_sections()
            .source(Dir::new(dir.path()))
            .allow_unknown_keys(allow)
            .build()
    };
    // Rejected by default, naming both keys; `$schema` is never one.
    let errors = build(&noisy, false).unwrap_err();
    let keys: Vec<_> = errors.iter().filter_map(|e| e.key()).collect();
    assert_eq!(keys, ["htpp", "upstream.api_kee"], "{errors}");

    let clean = build(&clean, false).unwrap();
    let noisy_accessor = build(&noisy, true).unwrap();
    let snapshot = noisy_accessor.load_full();
    assert_eq!(
        snapshot.hash(),
        clean.load().hash(),
        "unknown keys are not hashed"
    );
    assert!(!snapshot.document().to_string().contains(junk));
    assert!(snapshot.document().get("$schema").is_none());

    // Changing only unknown keys publishes nothing.
    noisy.write(
        "app.toml",
        &format!(
            "{}\napi_kee = \"other\"\n[htpp]\nport = 1\n",
            APP_TOML.trim_end()
        ),
    );
    assert!(
        !noisy_accessor
            .reload(Origin::Refresh)
            .unwrap()
            .is_published()
    );

    // A real change publishes; the history and its diff know nothing of the junk.
    noisy.write(
        "app.toml",
        &format!(
            "{}\napi_kee = \"{junk}\"\n",
            APP_TOML
                .replace("message = \"hello\"", "message = \"hey\"")
                .trim_end()
        ),
    );
    assert_eq!(noisy_accessor.reload(Origin::Refresh).unwrap().version(), 2);
    let diff = noisy_accessor.diff_versions(1, 2).unwrap();
    let keys: Vec<_> = diff.changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["greeting.message"]);
    let history = serde_json::to_string(&noisy_accessor.history()).unwrap();
    assert!(
        !history.contains(junk) && !history.contains("htpp"),
        "{history}"
    );
    let preview = noisy_accessor.preview(Candidate::Overlay(json!({"htpp": {"port": junk}})));
    assert!(preview.unchanged, "an ignored key changes nothing");
}

#[test]
fn a_section_can_allow_unknown_keys_for_itself_alone() {
    let dir = ConfigDir::new();
    dir.write(
        "app.toml",
        "[labels]\nteam = \"core\"\ncost_center = \"cc-1\"\n[http]\nport = 1\n",
    );
    let build = || {
        EaCAccessor::builder()
            .section::<Labels>()
            .section::<Http>()
            .source(Dir::new(dir.path()))
            .build()
    };
    let accessor = build().unwrap();
    assert_eq!(accessor.load().section::<Labels>().team, "core");
    assert_eq!(
        accessor.load().document()["labels"],
        json!({"team": "core"})
    );
    // The other section keeps the rule.
    dir.write(
        "app.toml",
        "[labels]\nteam = \"core\"\ncost_center = \"cc-1\"\n[http]\nport = 1\nprot = 2\n",
    );
    let errors = build().unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.as_slice()[0].key(), Some("http.prot"));
    const { assert!(Labels::ALLOW_UNKNOWN_KEYS && !Http::ALLOW_UNKNOWN_KEYS) };
}

/// A 2 MB unknown key (in a section and at the top) costs no "did you mean"
/// table, and its error shows the key cut short, with its length — never the whole key.
#[test]
fn a_huge_unknown_key_is_reported_cut_short_with_its_length() {
    let dir = with_http();
    let accessor = five_sections(&dir, Env::prefixed("APP_").vars::<&str, &str>([])).unwrap();
    let huge = "k".repeat(2 << 20);
    dir.write(
        "http.toml",
        &format!("[http]\nport = 8080\n{huge} = 1\n[{huge}x]\ny = 2\n"),
    );
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    let text = dir.scrub(&errors.to_string());
    assert!(text.len() < 1000, "{} bytes", text.len());
    let keys: Vec<_> = errors.as_slice().iter().filter_map(|e| e.key()).collect();
    assert_eq!(keys.len(), 2, "{text}");
    insta::assert_snapshot!(text.replace(&"k".repeat(60), "k{60}"));
}
