//! The README's first example as a program (`readme_first`): when the configuration is
//! wrong, `main` returning `Err(Errors)` prints every problem, one line each, naming the
//! key and the file — not the `Debug` of a struct.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `readme_first` on `dir`, with no `APP_` variable of the test's environment.
fn run(dir: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_readme_first"));
    command.arg(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("APP_") {
            command.env_remove(name);
        }
    }
    command.output().expect("readme_first runs")
}

#[test]
fn a_good_folder_prints_the_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.toml"),
        "[limits]\nmax_body_bytes = 2048\n",
    )
    .unwrap();
    let out = run(dir.path());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "max body: 2048 bytes\n"
    );
}

#[test]
fn a_wrong_config_prints_one_readable_line_per_error_from_main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.toml"),
        "[limits]\nmax_body_bytes = 0\n\n[limtis]\nmax_body_bytes = 10\n",
    )
    .unwrap();
    let out = run(dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&dir.path().display().to_string(), "[dir]");
    for debug_only in ["Errors(", "Error {", "kind:", "Some("] {
        assert!(
            !stderr.contains(debug_only),
            "a struct's Debug in: {stderr}"
        );
    }
    insta::assert_snapshot!("readme_first_rejected", stderr);
}
