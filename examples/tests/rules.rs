//! `live_server`'s `[access] rules`, compiled by a resolver once per change, asked by
//! `GET /rules?path=…`, as a process.

mod support;

use eac_tests::APP_TOML as APP;
use support::{Auth, Launch};

fn with_rules(rules: &str) -> String {
    format!("{APP}\n[access]\nrules = {rules}\n")
}

#[test]
fn rules_follow_the_file_and_a_broken_pattern_keeps_the_old_ones() {
    let (dir, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = dir.path().join("app.toml");
    // No `[access]` section: every path is allowed.
    std::fs::write(&file, APP).unwrap();
    let server = Launch::new(dir.path(), state.path()).start();
    let answer = server.get("/rules?path=/admin", Auth::None);
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(answer["version"], 1);
    assert_eq!(answer["built_at_version"], 1);

    // Rules arrive: compiled by version 2, and applied.
    std::fs::write(&file, with_rules(r#"["/api/**", "^/v[0-9]+/"]"#)).unwrap();
    let answer = server.until("/rules?path=/admin", |b| b["version"] == 2);
    assert_eq!(answer["allowed"], false, "{answer}");
    assert_eq!(answer["built_at_version"], 2);
    assert_eq!(
        server.get("/rules?path=/api/users", Auth::None)["allowed"],
        true
    );
    assert_eq!(server.get("/rules?path=/v3/x", Auth::None)["allowed"], true);

    // An unrelated edit: version 3 serves the rules version 2 compiled.
    std::fs::write(
        &file,
        with_rules(r#"["/api/**", "^/v[0-9]+/"]"#).replace("\"hello\"", "\"hi\""),
    )
    .unwrap();
    let answer = server.until("/rules?path=/api/x", |b| b["version"] == 3);
    assert_eq!(answer["built_at_version"], 2, "{answer}");

    // A pattern that does not compile: rejected, naming its key; the old rules stay.
    std::fs::write(&file, with_rules(r#"["/api/**", "/a/{b"]"#)).unwrap();
    let status = server.until("/_internal/eac/status", |s| s["outcome"] == "rejected");
    let error = &status["errors"][0];
    assert_eq!(error["key"], "access.rules.1", "{status}");
    assert_eq!(error["kind"], "resolve", "{status}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("resolver `access rules` (reads `access`) could not build: pattern `/a/{b` does not compile"),
        "{status}"
    );
    assert!(
        error["source"].as_str().unwrap().contains("app.toml"),
        "{status}"
    );
    let answer = server.get("/rules?path=/v3/x", Auth::None);
    assert_eq!(
        answer["allowed"], true,
        "the old rules still apply: {answer}"
    );
    assert_eq!(answer["version"], 3);
    let resolvers = &status["resolvers"];
    assert_eq!(resolvers[0]["built_at_version"], 2, "{status}");
    server.terminate();
}
