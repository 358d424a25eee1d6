//! Fields read only at start (`#[eac(restart)]`): a change is published, classified
//! `restart` in diffs and previews, and listed as needing a restart until the value is
//! back to the one the process started on.

use eac_accessor::prelude::*;
use eac_accessor::source::{Format, Memory};
use eac_accessor::{Candidate, Class};
use eac_tests::ConfigDir;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema, EaCSection)]
#[eac(path = "server")]
struct Server {
    /// Bound once, at start.
    #[eac(restart)]
    port: u16,
    /// Read per request.
    name: String,
}

fn doc(port: u16, name: &str) -> String {
    format!("[server]\nport = {port}\nname = \"{name}\"\n")
}

#[test]
fn the_derive_lists_the_restart_fields() {
    assert_eq!(Server::restart_paths(), ["port"]);
}

#[test]
fn a_restart_field_change_is_published_classified_and_shown_as_needing_a_restart() {
    let source = Memory::new("app", Format::Toml, doc(8080, "a"));
    let accessor = EaCAccessor::builder()
        .section::<Server>()
        .source(source.clone())
        .build()
        .unwrap();
    assert!(accessor.status().restart_needed.is_empty());

    // A preview classifies it before it lands.
    let preview = accessor.preview(Candidate::Overlay(
        serde_json::json!({"server": {"port": 9090}}),
    ));
    assert!(preview.would_publish, "{preview:?}");
    let change = &preview.diff.changes[0];
    assert_eq!(
        (change.key.as_str(), change.class),
        ("server.port", Class::Restart)
    );
    assert!(
        change.reason.contains("applies after a restart"),
        "{}",
        change.reason
    );

    source.set(doc(9090, "a"));
    let outcome = accessor.reload(Origin::Refresh).unwrap();
    assert!(outcome.is_published(), "published: the next start uses it");
    assert_eq!(accessor.load().section::<Server>().port, 9090);
    assert_eq!(accessor.status().restart_needed, ["server.port"]);
    let diff = accessor.diff_versions(1, 2).unwrap();
    assert_eq!(diff.changes[0].class, Class::Restart);

    // A field read live stays safe, and does not need a restart.
    source.set(doc(9090, "b"));
    accessor.reload(Origin::Refresh).unwrap();
    assert_eq!(accessor.load().section::<Server>().name, "b");
    let diff = accessor.diff_versions(2, 3).unwrap();
    assert_eq!(
        (diff.changes[0].key.as_str(), diff.changes[0].class),
        ("server.name", Class::Safe)
    );
    assert_eq!(accessor.status().restart_needed, ["server.port"]);

    // Back to the value the process started on: nothing to restart for.
    source.set(doc(8080, "b"));
    accessor.reload(Origin::Refresh).unwrap();
    assert!(accessor.status().restart_needed.is_empty());
}

#[test]
fn restart_fields_read_from_files_too() {
    let dir = ConfigDir::new();
    dir.write("app.toml", &doc(1, "x"));
    let accessor = EaCAccessor::builder()
        .section::<Server>()
        .source(eac_accessor::source::Dir::new(dir.path()))
        .build()
        .unwrap();
    dir.write("app.toml", &doc(2, "x"));
    accessor.reload(Origin::Refresh).unwrap();
    let status = serde_json::to_value(accessor.status()).unwrap();
    assert_eq!(status["restart_needed"], serde_json::json!(["server.port"]));
}
