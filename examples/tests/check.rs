//! `live_server --check` and `--print-schema`: validate without serving, and the schema
//! that editors read.

mod support;

use eac_tests::{APP_TOML as APP, SECRET};
use support::Launch;

fn check(dir: &std::path::Path) -> (Option<i32>, String) {
    let state = tempfile::tempdir().unwrap();
    let (code, stdout, _) = Launch::bare()
        .arg("--config-dir")
        .arg(dir.to_str().unwrap())
        .arg("--state-dir")
        .arg(state.path().join("never").to_str().unwrap())
        .arg("--check")
        .output();
    assert!(
        !state.path().join("never").exists(),
        "--check opened the state dir"
    );
    (code, stdout.replace(&dir.display().to_string(), "[dir]"))
}

#[test]
fn check_exits_0_on_a_good_folder_and_1_with_every_error_on_a_broken_one() {
    let good = tempfile::tempdir().unwrap();
    std::fs::write(good.path().join("app.toml"), APP).unwrap();
    let (code, out) = check(good.path());
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim(), "[dir]: valid");

    let broken = tempfile::tempdir().unwrap();
    let text = APP
        .replace("max_body_bytes = 1048576", "max_body_bytes = \"lots\"")
        .replace("[greeting]", "[greting]")
        .replace("url = \"https://upstream.example\"", "url = \"ftp://x\"");
    std::fs::write(broken.path().join("app.toml"), text).unwrap();
    let (code, out) = check(broken.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains(SECRET), "a secret was printed: {out}");
    insta::assert_snapshot!("check_broken", out);
}

#[test]
fn check_reports_every_file_s_errors_though_one_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.toml"), APP).unwrap();
    std::fs::write(dir.path().join("b.toml"), "[features\nshout = true\n").unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[limits]\nmax_body_bytes = 0\nrequest_timeout_ms = 5000\n",
    )
    .unwrap();
    let (code, out) = check(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("[dir]/b.toml"), "the syntax error: {out}");
    assert!(
        out.contains("limits.max_body_bytes") && out.contains("[dir]/c.toml"),
        "the other file's error: {out}"
    );
}

/// A schema error does not hide the resolvers' errors, and a resolver reports every bad
/// value it found: all three at once.
#[test]
fn check_reports_a_schema_error_and_every_bad_access_rule_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = APP.replace("max_body_bytes = 1048576", "max_body_bytes = 0")
        + "\n[access]\nrules = [\"/a/{b\", \"/ok/**\", \"^(unclosed\"]\n";
    std::fs::write(dir.path().join("app.toml"), text).unwrap();
    let (code, out) = check(dir.path());
    assert_eq!(code, Some(1), "{out}");
    insta::assert_snapshot!("check_schema_and_rules", out);
}

#[test]
fn the_exported_schema_is_draft_07_and_validates_the_bundled_config() {
    let (code, stdout, _) = Launch::bare().arg("--print-schema").output();
    assert_eq!(code, Some(0));
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let validator = jsonschema::draft7::new(&schema).unwrap();

    let bundled =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/app.toml")).unwrap();
    let bundled: serde_json::Value = toml::from_str(&bundled).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&bundled)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    let mut broken = bundled.clone();
    broken["limits"]["max_body_bytes"] = serde_json::json!(0);
    assert!(!validator.is_valid(&broken), "a limit of 0 passed");
    let mut misspelled = bundled;
    misspelled["greting"] = misspelled["greeting"].clone();
    assert!(
        !validator.is_valid(&misspelled),
        "an unknown section passed"
    );
}

/// A 2 MB key in the folder is reported briefly, cut short with its length, and the
/// "did you mean" search stays bounded: within its own deadline, the run ends long
/// before it.
#[test]
fn check_reports_a_huge_unknown_key_cut_short() {
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let huge = "k".repeat(2 << 20);
    let text = APP.replace("[greeting]\n", &format!("[greeting]\n{huge} = 1\n"));
    std::fs::write(dir.path().join("app.toml"), text).unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_live_server"))
        .arg("--config-dir")
        .arg(dir.path())
        .arg("--state-dir")
        .arg(state.path().join("never"))
        .arg("--check")
        .stdout(out.reopen().unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start live_server");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`--check` was still busy after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(out.path()).unwrap();
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(stdout.len() < 1000, "{} bytes of output", stdout.len());
    assert!(
        stdout.contains("the key has 2097161 characters"),
        "{stdout}"
    );
}
