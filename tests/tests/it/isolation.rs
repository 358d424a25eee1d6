//! A bad input blocks only itself: a rejected input is held back with its last accepted
//! content while the rest of a change is published, and is retried when it changes.

use eac_accessor::source::{File, Format, Memory};
use eac_accessor::{Candidate, EaCAccessor, ErrorKind, Event, Origin, SourceName};
use eac_tests::{ConfigDir, Greeting, Limits, Upstream};

use crate::four_sections;

const LOCAL: &str = "[greeting]\nmessage = \"hello\"\n\n[features]\nshout = false\n";
const REMOTE: &str = "[limits]\nmax_body_bytes = 1024\nrequest_timeout_ms = 500\n\n\
                      [upstream]\nurl = \"https://a.example\"\napi_key = \"0123456789\"\n";

/// An accessor over `files` of `dir`, then `remote`, valid at start.
fn over(dir: &ConfigDir, files: &[&str], remote: &Memory) -> EaCAccessor {
    files
        .iter()
        .fold(four_sections(), |b, f| b.source(File::new(dir.file(f))))
        .source(remote.clone())
        .build()
        .expect("valid at start")
}

/// An accessor over a file (greeting, features) and a document standing for a remote
/// one (limits, upstream), both valid.
fn file_and_remote() -> (EaCAccessor, ConfigDir, Memory) {
    let dir = ConfigDir::new();
    dir.write("app.toml", LOCAL);
    let remote = Memory::new("remote", Format::Toml, REMOTE);
    (over(&dir, &["app.toml"], &remote), dir, remote)
}

#[test]
fn a_bad_remote_document_does_not_block_a_file_edit() {
    let (accessor, dir, remote) = file_and_remote();
    let mut events = accessor.events();

    // The remote document turns bad: only it changed, so the reload is rejected.
    remote.set(REMOTE.replace("max_body_bytes = 1024", "max_body_bytes = 0"));
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    assert!(errors.has(ErrorKind::Schema), "{errors}");
    assert_eq!(accessor.load().version(), 1);

    // A valid file edit is published all the same, with the remote's last good values.
    dir.write("app.toml", &LOCAL.replace("hello", "edited"));
    let outcome = accessor
        .reload(Origin::Refresh)
        .expect("the file edit is published");
    assert!(outcome.is_published());
    let snapshot = accessor.load();
    assert_eq!(snapshot.version(), 2);
    assert_eq!(snapshot.section::<Greeting>().message, "edited");
    assert_eq!(snapshot.section::<Limits>().max_body_bytes, 1024);

    // The remote document shows as held back, with why, until it changes.
    let status = accessor.status();
    let [held] = status.held_back.as_slice() else {
        panic!("one input held back: {:?}", status.held_back);
    };
    assert_eq!(held.input, SourceName::Memory("remote".into()).to_string());
    assert!(
        held.errors
            .iter()
            .any(|e| e.key() == Some("limits.max_body_bytes"))
    );
    let report = status.last_reload.expect("a reload");
    assert_eq!((report.outcome, report.held_back.len()), ("published", 1));
    let seen: Vec<Event> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(
        seen.iter().any(
            |e| matches!(e, Event::HeldBack { version: 2, input, .. } if *input == held.input)
        ),
        "{seen:?}"
    );

    // Fixed, it is retried and goes live; nothing is held back any more.
    remote.set(REMOTE.replace("max_body_bytes = 1024", "max_body_bytes = 2048"));
    assert!(accessor.reload(Origin::Refresh).unwrap().is_published());
    assert_eq!(accessor.load().section::<Limits>().max_body_bytes, 2048);
    assert_eq!(accessor.load().section::<Greeting>().message, "edited");
    assert!(accessor.status().held_back.is_empty());
}

#[test]
fn a_bad_file_does_not_block_a_remote_change() {
    let (accessor, dir, remote) = file_and_remote();
    dir.write("app.toml", "[greeting\nmessage = \"broken\"\n");
    remote.set(REMOTE.replace("request_timeout_ms = 500", "request_timeout_ms = 900"));
    assert!(accessor.reload(Origin::Refresh).unwrap().is_published());
    let snapshot = accessor.load();
    assert_eq!(snapshot.section::<Limits>().request_timeout_ms, 900);
    assert_eq!(snapshot.section::<Greeting>().message, "hello");
    let status = accessor.status();
    assert_eq!(status.held_back.len(), 1);
    assert!(status.held_back[0].input.contains("app.toml"));
    assert_eq!(status.held_back[0].errors[0].kind(), ErrorKind::Parse);
}

#[test]
fn an_error_spanning_two_inputs_rejects_the_whole_candidate() {
    // `upstream`'s own validate reads `url` (from the file) and `api_key` (from the remote).
    let dir = ConfigDir::new();
    dir.write(
        "app.toml",
        &format!("{LOCAL}\n[upstream]\nurl = \"https://a.example\"\n"),
    );
    let remote = Memory::new(
        "remote",
        Format::Toml,
        "[limits]\nmax_body_bytes = 1\nrequest_timeout_ms = 1\n[upstream]\napi_key = \"0123456789\"\n",
    );
    let accessor = over(&dir, &["app.toml"], &remote);

    remote.set(
        "[limits]\nmax_body_bytes = 1\nrequest_timeout_ms = 1\n[upstream]\napi_key = \"short\"\n",
    );
    dir.write(
        "app.toml",
        &format!(
            "{}\n[upstream]\nurl = \"https://a.example\"\n",
            LOCAL.replace("hello", "edited")
        ),
    );
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    assert!(errors.has(ErrorKind::Validation), "{errors}");
    assert_eq!(accessor.load().version(), 1);
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");
    assert_eq!(accessor.load().section::<Upstream>().api_key, "0123456789");
    assert!(accessor.status().held_back.is_empty());
}

#[test]
fn two_bad_inputs_are_each_held_back() {
    let dir = ConfigDir::new();
    dir.write("app.toml", LOCAL);
    dir.write(
        "limits.toml",
        "[limits]\nmax_body_bytes = 1\nrequest_timeout_ms = 1\n",
    );
    let remote = Memory::new(
        "remote",
        Format::Toml,
        "[upstream]\nurl = \"https://a.example\"\napi_key = \"0123456789\"\n",
    );
    let accessor = over(&dir, &["app.toml", "limits.toml"], &remote);

    dir.write(
        "limits.toml",
        "[limits]\nmax_body_bytes = \"many\"\nrequest_timeout_ms = 1\n",
    );
    remote.set("[upstream]\nurl = \"https://a.example\"\napi_key = 7\n");
    dir.write("app.toml", &LOCAL.replace("hello", "edited"));
    assert!(accessor.reload(Origin::Refresh).unwrap().is_published());
    assert_eq!(accessor.load().section::<Greeting>().message, "edited");
    assert_eq!(accessor.load().section::<Limits>().max_body_bytes, 1);
    let mut held: Vec<String> = accessor
        .status()
        .held_back
        .into_iter()
        .map(|h| h.input)
        .collect();
    held.sort();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held[0].contains("remote") && held[1].contains("limits.toml"),
        "{held:?}"
    );
}

#[test]
fn after_a_rollback_a_bad_input_rejects_the_whole_candidate() {
    let (accessor, dir, remote) = file_and_remote();
    dir.write("app.toml", &LOCAL.replace("hello", "second"));
    accessor.reload(Origin::Refresh).unwrap();
    accessor.rollback_to(1).unwrap();
    // The running version was not read from the sources: there is no accepted content
    // of the remote document to put in its place with certainty.
    remote.set(REMOTE.replace("max_body_bytes = 1024", "max_body_bytes = 0"));
    dir.write("app.toml", &LOCAL.replace("hello", "third"));
    accessor.reload(Origin::Refresh).unwrap_err();
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");
}

#[test]
fn a_dry_run_of_the_sources_holds_back_as_a_reload_would() {
    let (accessor, dir, remote) = file_and_remote();
    remote.set(REMOTE.replace("api_key = \"0123456789\"", "api_key = 7"));
    dir.write("app.toml", &LOCAL.replace("shout = false", "shout = true"));

    let preview = accessor.preview(Candidate::Sources);
    assert!(
        preview.would_publish && preview.errors.is_empty(),
        "{preview:?}"
    );
    assert_eq!(preview.held_back.len(), 1);
    assert_eq!(
        preview.held_back[0].input,
        SourceName::Memory("remote".into()).to_string()
    );
    let changed: Vec<&str> = preview
        .diff
        .changes
        .iter()
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(changed, ["features.shout"]);
    assert_eq!(accessor.load().version(), 1, "a dry run publishes nothing");

    // An overlay's own errors are never held back: they are what the dry run is about.
    let overlay = serde_json::json!({"limits": {"max_body_bytes": 0}});
    let preview = accessor.preview(Candidate::Overlay(overlay));
    assert!(!preview.would_publish && !preview.errors.is_empty());
}

#[test]
fn every_input_s_errors_are_reported_though_one_does_not_parse() {
    let (accessor, dir, remote) = file_and_remote();
    dir.write("app.toml", "[greeting\nmessage = \"broken\"\n");
    remote.set(REMOTE.replace("max_body_bytes = 1024", "max_body_bytes = 0"));
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    let kinds: Vec<(ErrorKind, Option<&str>)> =
        errors.iter().map(|e| (e.kind(), e.key())).collect();
    // The file's syntax error, and the remote document's value: nothing about the keys
    // the unreadable file would have set.
    assert_eq!(
        kinds,
        [
            (ErrorKind::Parse, None),
            (ErrorKind::Schema, Some("limits.max_body_bytes"))
        ],
        "{errors}"
    );
    assert_eq!(accessor.load().version(), 1);
}

#[test]
fn a_file_that_cannot_be_read_blocks_only_itself() {
    let (accessor, dir, remote) = file_and_remote();
    // Not UTF-8: the file is unreadable, not merely invalid.
    std::fs::write(dir.file("app.toml"), [0xff, 0xfe, 0x00]).unwrap();
    remote.set(REMOTE.replace("request_timeout_ms = 500", "request_timeout_ms = 700"));
    assert!(accessor.reload(Origin::Refresh).unwrap().is_published());
    assert_eq!(accessor.load().section::<Limits>().request_timeout_ms, 700);
    assert_eq!(accessor.load().section::<Greeting>().message, "hello");
    let held = accessor.status().held_back;
    assert_eq!(held.len(), 1);
    assert!(held[0].input.contains("app.toml"), "{held:?}");
}

#[test]
fn a_preview_from_a_change_callback_does_not_wait_for_the_publish_that_runs_it() {
    let (accessor, dir, _remote) = file_and_remote();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let _subscription = accessor.on_change::<Greeting, _>({
        let (accessor, seen) = (accessor.clone(), std::sync::Arc::clone(&seen));
        move |_| {
            let preview = accessor.preview(Candidate::Sources);
            *seen.lock().unwrap() = Some(preview.version);
        }
    });
    dir.write("app.toml", &LOCAL.replace("hello", "edited"));
    assert!(accessor.reload(Origin::Refresh).unwrap().is_published());
    // Run inside the publish (its writer still held), once the new version is current.
    assert_eq!(*seen.lock().unwrap(), Some(2));
}
