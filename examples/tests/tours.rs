//! The README's tours, run as written: each `sh` block under a tour's heading, one after
//! the other in one `bash`, from the repository's root — with this build's binaries in
//! place of `target/release/…` (and without its `cargo build` lines). A comment's text in
//! backquotes is what its line prints: the line's output must hold it, or the tour fails
//! naming the line. Each tour stops what it started.
//!
//! Needs `curl` and `jq`; the etcd tours `etcd` and `etcdctl` (Debian: `etcd-server`,
//! `etcd-client`) and the `etcd` feature.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The tours without etcd, in the README's order.
const TOURS: &[&str] = &[
    "## A 60-second tour of `live_server`",
    "### The admin surface is closed by default",
    "### Check before it goes live, and let the editor help",
    "### Resolvers: what the service builds from its config",
    "### A configuration that lives in a config service: `--remote`",
    "### Running it for real",
    "### A canary inside one process: `--reload canary`",
];

/// The tours of a fleet on etcd.
#[cfg(feature = "etcd")]
const ETCD_TOURS: &[&str] = &[
    "### A fleet on etcd",
    "### A gray release across the fleet: `live_server release`",
];

/// The first `sh` block after `heading`.
fn block<'r>(readme: &'r str, heading: &str) -> &'r str {
    let at = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no heading {heading:?} in README.md"));
    let rest = &readme[at..];
    let start = rest.find("\n```sh\n").expect("an sh block") + "\n```sh\n".len();
    let end = rest[start..].find("\n```").expect("the block's end");
    &rest[start..start + end]
}

/// The backquoted parts of a line's comment: what the line must print.
fn expected(comment: &str) -> Vec<&str> {
    comment.split('`').skip(1).step_by(2).collect()
}

/// `block` as the script that runs it: this build's binaries, no `cargo build`, each
/// line with expectations run with its output captured and checked. A comment on a line
/// of its own adds to the expectations of the command before it.
fn script(block: &str, name: &str) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_live_server"))
        .parent()
        .unwrap();
    // Continuation lines joined: a command is checked whole.
    let joined = block.replace("\\\n", " ");
    let mut lines: Vec<(usize, String, String)> = Vec::new();
    for (n, line) in joined.lines().enumerate() {
        let line = line
            .replace("target/release/", &format!("{}/", bin.display()))
            .replace(
                "cargo build --release -p eac-examples --features etcd --bin live_server && ",
                "",
            );
        if line.trim_start().starts_with("cargo build") {
            continue;
        }
        if let Some(comment) = line.trim_start().strip_prefix("# ") {
            if let Some(last) = lines.last_mut() {
                last.2 += " ";
                last.2 += comment;
            }
            continue;
        }
        let (command, comment) = match line.find("  # ") {
            Some(i) => (line[..i].trim_end().to_owned(), line[i + 4..].to_owned()),
            None => (line, String::new()),
        };
        lines.push((n + 1, command, comment));
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut out = String::from(
        "expect() { local line=\"$1\" out=\"$2\"; shift 2; for want in \"$@\"; do\n\
         case \"$out\" in *\"$want\"*) ;; *) echo \"TOUR FAILED: line $line: expected [$want] in:\"; \
         echo \"$out\"; exit 1;; esac; done; }\n",
    );
    for (n, command, comment) in lines {
        let wants = expected(&comment);
        let background = command.contains(" & ") || command.trim_end().ends_with('&');
        if wants.is_empty() || background {
            out += &command;
            out += "\n";
            continue;
        }
        // Run it, keep what it prints (and print it), and check it.
        out += &format!("__out=$( {{ {command}\n}} 2>&1 ); printf '%s\\n' \"$__out\"\n");
        let wants: Vec<String> = wants.iter().map(|w| quote(w)).collect();
        out += &format!(
            "expect {} \"$__out\" {}\n",
            quote(&format!("{name}:{n}")),
            wants.join(" ")
        );
    }
    out
}

/// Fails, saying what to install, when `tool` is not on the PATH.
fn need(tool: &str, packages: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "the README's tours need `{tool}`: apt-get install {packages}"
    );
}

/// Runs `tours` one after the other in one `bash` at the repository's root.
fn run(tours: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for tool in ["curl", "jq"] {
        need(tool, tool);
    }
    let mut all = String::new();
    for heading in tours {
        let name = heading.trim_start_matches('#').trim();
        all += &format!("echo '== {}'\n", name.replace('\'', ""));
        all += &script(block(&readme, heading), name);
    }
    // In a session of its own, its output in files: whatever a failed tour leaves
    // running is stopped with the session, and holds no pipe of this test open.
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new("setsid")
        .args(["bash", "-c", &all])
        .current_dir(root)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // `--` before the negative group id: procps-ng 4.0.2's `kill -KILL -12345` reads the
    // group as `-1` (its first digit) and kills every process it may.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && !stdout.contains("TOUR FAILED"),
        "the tours did not print what they say ({status:?}):\n{stdout}\n--- stderr:\n{stderr}\n--- script:\n{all}"
    );
}

#[test]
fn the_readme_tours_print_what_they_say() {
    run(TOURS);
}

#[cfg(feature = "etcd")]
#[test]
fn the_readme_etcd_tours_print_what_they_say() {
    for tool in ["etcd", "etcdctl"] {
        need(tool, "etcd-server etcd-client");
    }
    run(ETCD_TOURS);
}

#[test]
fn a_tour_line_is_checked_against_its_backquoted_comment_and_the_comment_lines_after_it() {
    let script = script(
        "cargo build --release -p x\ncurl -s a/   # prints `a` and `b`\n# then `c`\nsleep 1   # nothing to check\nx & Y=$!   # `not checked`\n",
        "t",
    );
    assert!(!script.contains("cargo build"), "{script}");
    assert!(
        script.contains("expect 't:2' \"$__out\" 'a' 'b' 'c'"),
        "{script}"
    );
    assert!(script.contains("\nsleep 1\n"), "{script}");
    assert!(!script.contains("not checked'"), "{script}");
    // Run: what a line prints passes its check, anything else fails naming the line.
    let run = |block: &str| {
        Command::new("bash")
            .args(["-c", &script_of(block)])
            .output()
            .unwrap()
    };
    let passed = run("echo 'hello, world'   # `hello,` and `world`\n");
    assert!(passed.status.success(), "{passed:?}");
    let failed = run("echo hello   # `bye`\necho after\n");
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("TOUR FAILED: line t:1: expected [bye]"),
        "{stdout}"
    );
    assert!(!stdout.contains("after"), "{stdout}");
}

fn script_of(block: &str) -> String {
    script(block, "t")
}
