//! `live_server` under an operator's faults, as a process: relative config folders,
//! two processes on one state dir, SIGHUP (also while it starts), SIGTERM with requests
//! already received while it was stopped (and while it starts), and manual reload mode.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use eac_tests::{APP_TOML as APP, SmallDisk};
use support::{Auth, Launch, read_response, write_request};

/// Replaces `app.toml` the way `sed -i` does: a new file renamed over the old one.
fn sed_like(dir: &Path, message: &str) {
    let tmp = dir.join(".app.toml.sed");
    std::fs::write(&tmp, APP.replace("\"hello\"", &format!("\"{message}\""))).unwrap();
    std::fs::rename(tmp, dir.join("app.toml")).unwrap();
}

/// The entries of an answer of `GET history`, newest first.
fn listed(history: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    history["versions"].as_array().into_iter().flatten()
}

#[test]
fn a_relative_config_dir_reloads() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("cfg");
    std::fs::create_dir(&cfg).unwrap();
    std::fs::write(cfg.join("app.toml"), APP).unwrap();
    for (cwd, given) in [
        (root.path(), "cfg"),
        (root.path(), "./cfg"),
        (cfg.as_path(), "."),
    ] {
        let state = tempfile::tempdir().unwrap();
        let server = Launch::new(Path::new(given), state.path()).cwd(cwd).start();
        let before = server.get("/", Auth::None)["version"].as_u64().unwrap();
        let message = format!("edited via {given}");
        sed_like(&cfg, &message);
        let body = server.until("/", |b| b["message"] == message.as_str());
        assert_eq!(body["version"].as_u64(), Some(before + 1), "{given}");
        // Errors keep naming the folder as the user gave it.
        std::fs::write(cfg.join("app.toml"), APP.replace("\"hello\"", "5")).unwrap();
        let status = server.until("/_internal/eac/status", |s| s["outcome"] == "rejected");
        let source = status["errors"][0]["source"].as_str().unwrap().to_owned();
        assert!(
            !source.starts_with(&root.path().display().to_string()),
            "{given}: {source}"
        );
        std::fs::write(cfg.join("app.toml"), APP).unwrap();
        server.terminate();
    }
}

#[test]
fn one_process_per_state_dir() {
    let state = tempfile::tempdir().unwrap();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(one.path().join("app.toml"), APP).unwrap();
    std::fs::write(two.path().join("app.toml"), APP).unwrap();
    let mut first = Launch::new(one.path(), state.path()).start();
    let (code, stderr) = Launch::new(two.path(), state.path()).run_to_end();
    // Its own exit code and message: the configuration is fine.
    assert_eq!(code, Some(6), "{stderr}");
    let said = format!(
        "live_server: the state dir `{}` is in use by process {}",
        state.path().display(),
        first.child.id()
    );
    assert!(
        stderr.contains(&said),
        "the refusal names the dir and the holder: {stderr}"
    );
    assert!(!stderr.contains("configuration rejected"), "{stderr}");
    let (_, help, _) = Launch::bare().arg("--help").output();
    assert!(
        help.contains("6  the state dir is in use by another process"),
        "{help}"
    );
    // A holder that dies leaves its lock to the next process.
    first.signal("KILL");
    first.wait_exit();
    let second = Launch::new(two.path(), state.path()).start();
    let status = second.get("/_internal/eac/status", Auth::None);
    assert_eq!(
        status["history_store"]["served_before"].as_str(),
        Some(std::path::absolute(one.path()).unwrap().to_str().unwrap()),
        "the state dir served another folder before: {status}"
    );
    second.terminate();
}

#[test]
fn sighup_reloads_and_never_ends_the_process() {
    let (config, state) = support::app_dirs();
    // The edit below is seen through the signal, not the watcher.
    let mut server = signal_driven(config.path(), state.path()).start();
    sed_like(config.path(), "after hup");
    server.signal("HUP");
    let status = server.until("/_internal/eac/status", |s| s["version"] == 2);
    assert_eq!(status["origin"]["kind"], "signal", "{status}");
    assert_eq!(server.get("/", Auth::None)["message"], "after hup");
    server.signal("HUP");
    assert!(server.running(), "SIGHUP ended the process");
    assert_eq!(server.request("GET", "/", Auth::None).status, 200);

    // A rejected SIGHUP reload: warned once, with every error, and the version stays.
    sed_like(config.path(), "");
    server.signal("HUP");
    until_logged(&server, "SIGHUP reload done: rejected", 1);
    let log = server.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("origin=signal (SIGHUP)") && warnings[0].contains("greeting.message"),
        "{warnings:#?}"
    );
    assert_eq!(server.get("/", Auth::None)["message"], "after hup");
    server.terminate();
}

/// A remote that holds `live_server`'s start: it accepts the first fetch and reads its
/// request, and answers only when told.
struct HeldRemote {
    listener: TcpListener,
}

impl HeldRemote {
    fn new() -> HeldRemote {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        HeldRemote { listener }
    }

    fn url(&self) -> String {
        format!("http://{}/config.json", self.listener.local_addr().unwrap())
    }

    /// Waits (up to 10 s) for the start's fetch and reads its request: from then on
    /// the process is starting, past the point where it registers its signals.
    fn held(&self, server: &mut support::Spawned) -> TcpStream {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        server.running(),
                        "it ended before fetching:\n{}",
                        server.log()
                    );
                    assert!(Instant::now() < deadline, "no fetch:\n{}", server.log());
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("the fetch's request");
            head.push(byte[0]);
        }
        stream
    }
}

/// Answers a held fetch with an empty JSON document.
fn answer(mut stream: TcpStream) {
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        )
        .unwrap();
}

/// A `live_server` held in its start by its remote's first fetch (no polling after it);
/// the fetch to answer; the config and state dirs, to keep.
fn held_start() -> (support::Spawned, TcpStream, [tempfile::TempDir; 2]) {
    let (config, state) = support::app_dirs();
    let remote = HeldRemote::new();
    let mut starting = Launch::new(config.path(), state.path())
        .arg("--remote")
        .arg(&remote.url())
        .env("EAC_REFRESH_POLL_INTERVAL_MS", "0")
        .spawn();
    let fetch = remote.held(&mut starting);
    (starting, fetch, [config, state])
}

#[test]
fn a_sighup_while_it_starts_never_ends_it_and_reloads_once_it_serves() {
    let (starting, fetch, _dirs) = held_start();
    starting.signal("HUP");
    starting.signal("HUP");
    // Under SIGHUP's default action the process would be gone before it could read the
    // answer: it would never say it listens.
    answer(fetch);
    let server = starting.listening();
    assert_eq!(server.get("/", Auth::None)["message"], "hello");
    let status = server.until("/_internal/eac/status", |s| {
        s["last_reload"]["origin"]["kind"] == "signal"
    });
    assert_eq!(status["version"], 1, "nothing changed: {status}");
    server.terminate();
}

#[test]
fn a_sigterm_while_it_starts_ends_it_with_0_at_once() {
    let (mut starting, _held, _dirs) = held_start();
    starting.signal("TERM");
    // The fetch is still held: it exits without waiting for it.
    assert_eq!(starting.wait_exit(), Some(0), "{}", starting.log());
    assert!(
        starting.log().contains("SIGTERM while starting"),
        "{}",
        starting.log()
    );
}

/// A server whose edits reach it only through SIGHUP (the watcher waits a minute),
/// stopping with a 500 ms grace.
fn signal_driven(config: &Path, state: &Path) -> Launch {
    Launch::new(config, state)
        .env("EAC_WATCH_DEBOUNCE_MS", "60000")
        .env("EAC_WATCH_MAX_WAIT_MS", "60000")
        .env("EAC_SHUTDOWN_GRACE_MS", "500")
}

/// Sends SIGTERM: it exits 0, well within a few of its 500 ms graces.
fn stops_within_the_grace(server: &mut support::Server) {
    let stopping = Instant::now();
    server.signal("TERM");
    assert_eq!(server.wait_exit(), Some(0), "{}", server.log());
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to stop (grace 500 ms)"
    );
}

/// Waits (up to 10 s) until the server has logged `line` `n` times.
fn until_logged(server: &support::Server, line: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log().matches(line).count() < n {
        assert!(
            Instant::now() < deadline,
            "never logged {line:?} {n} times:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_sigterm_while_a_sighup_reload_waits_stops_it_within_the_grace() {
    let (config, state) = support::app_dirs();
    // After a publish, the next reload waits a minute.
    let mut server = signal_driven(config.path(), state.path())
        .env("EAC_REFRESH_COOLDOWN_MS", "60000")
        .start();
    sed_like(config.path(), "first");
    server.signal("HUP");
    server.until("/_internal/eac/status", |s| s["version"] == 2);
    sed_like(config.path(), "second");
    server.signal("HUP");
    // That reload now waits out the cooldown.
    until_logged(&server, "SIGHUP: reloading", 2);
    stops_within_the_grace(&mut server);
}

#[test]
fn a_sigterm_while_a_slow_reload_builds_exits_within_the_grace_and_publishes_nothing() {
    let (config, state) = support::app_dirs();
    let mut server = signal_driven(config.path(), state.path()).start();
    // 450,000 access rules (under the 500,000-value parse budget): compiling them into
    // one matcher takes seconds.
    let mut rules = String::from("[access]\nrules = [\n");
    for i in 0..450_000 {
        rules.push_str(&format!("\"/r{i}/**\",\n"));
    }
    rules.push_str("]\n");
    std::fs::write(config.path().join("rules.toml"), rules).unwrap();
    server.signal("HUP");
    until_logged(&server, "SIGHUP: reloading", 1);
    stops_within_the_grace(&mut server);
    assert!(
        !server.log().contains("SIGHUP reload done"),
        "the reload finished before the stop: this run did not test a stop during a build"
    );
    // Nothing was published after the stop: no version in the history came from the
    // signal. (The rules go first, so that the restart is quick.)
    std::fs::remove_file(config.path().join("rules.toml")).unwrap();
    let restarted = Launch::new(config.path(), state.path()).start();
    let history = restarted.get("/_internal/eac/history", Auth::None);
    let origins: Vec<&str> = listed(&history)
        .filter_map(|e| e["origin"]["kind"].as_str())
        .collect();
    assert!(!origins.is_empty(), "{history}");
    assert!(
        !origins.contains(&"signal"),
        "published during shutdown: {history}"
    );
    restarted.terminate();
}

#[test]
fn in_manual_mode_a_change_is_pending_until_refresh_and_sighup_only_rereads() {
    let (config, state) = support::app_dirs();
    let server = Launch::new(config.path(), state.path())
        .arg("--reload")
        .arg("manual")
        .start();
    sed_like(config.path(), "pending");
    let status = server.until("/_internal/eac/status", |s| !s["pending"].is_null());
    assert_eq!(status["version"], 1);
    assert_eq!(status["differs_from_sources"], true);
    assert_eq!(
        status["pending"]["diff"]["changes"][0]["key"],
        "greeting.message"
    );
    assert_eq!(server.get("/", Auth::None)["message"], "hello");
    server.signal("HUP");
    let status = server.until("/_internal/eac/status", |s| {
        s["pending"]["origin"]["kind"] == "signal"
    });
    assert_eq!(status["version"], 1, "SIGHUP published in manual mode");
    let response = server.request("POST", "/_internal/eac/refresh", Auth::Admin);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(server.get("/", Auth::None)["message"], "pending");
    let status = server.get("/_internal/eac/status", Auth::None);
    assert!(
        status["pending"].is_null() && status["differs_from_sources"] == false,
        "{status}"
    );
    server.terminate();
}

#[test]
fn sigterm_answers_every_request_received_while_the_process_was_stopped() {
    let (config, state) = support::app_dirs();
    let mut server = Launch::new(config.path(), state.path()).start();
    // Some connections opened and idle before, some opened while stopped.
    let mut idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    assert_eq!(server.request("GET", "/", Auth::None).status, 200);
    server.signal("STOP");
    let mut fresh: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(server.address).unwrap())
        .collect();
    for stream in idle.iter_mut().chain(fresh.iter_mut()) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write_request(stream, "GET", "/pinned", Auth::None);
    }
    server.signal("TERM");
    server.signal("CONT");
    let mut answered = 0;
    for (i, stream) in idle.iter_mut().chain(fresh.iter_mut()).enumerate() {
        let response = read_response(stream).unwrap_or_else(|e| {
            panic!("request {i} was not answered: {e}\nlog:\n{}", server.log())
        });
        assert_eq!(response.status, 200, "request {i}");
        assert_eq!(response.json()["version"], 1);
        answered += 1;
    }
    assert_eq!(answered, 30);
    assert_eq!(server.wait_exit(), Some(0), "log:\n{}", server.log());
}

#[test]
fn a_full_state_dir_disk_is_reported_and_the_history_has_no_gap_after_a_restart() {
    let disk = SmallDisk::new("512k");
    let state = disk.path().join("state");
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("app.toml"), APP).unwrap();
    let launch = Launch::new(config.path(), &state);
    let server = launch.start();
    // Fill the disk, then publish versions whose records are each larger than a page.
    let filler = disk.fill();
    for v in 2..=5 {
        let message = format!("v{v} {}", "x".repeat(6000));
        sed_like(config.path(), &message);
        server.until("/", |b| b["version"] == v);
    }
    let status = server.get("/_internal/eac/status", Auth::None);
    let store = &status["history_store"];
    assert!(
        store["error"]
            .as_str()
            .is_some_and(|e| e.contains(&state.display().to_string())),
        "the failure is reported, naming the state dir: {status}"
    );
    assert_eq!(store["unsaved"], serde_json::json!([2, 3, 4, 5]));
    // Space comes back; at exit the store catches up.
    std::fs::remove_file(filler).unwrap();
    server.terminate();
    let server = launch.start();
    let history = server.get("/_internal/eac/history", Auth::None);
    let versions: Vec<u64> = listed(&history)
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(versions, [5, 4, 3, 2, 1], "{history}");
    server.terminate();
}

#[test]
fn slow_takes_as_long_as_asked_within_the_live_timeout_and_a_sigterm_drains_it() {
    let (config, state) = support::app_dirs();
    let mut server = Launch::new(config.path(), state.path())
        .env("APP_LIMITS__REQUEST_TIMEOUT_MS", "300")
        .start();
    let slow = server.request("GET", "/slow?ms=50", Auth::None);
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert_eq!(slow.json()["slept_ms"], 50);
    assert_eq!(slow.version(), Some(1));
    // Longer than the live timeout: cut short with its 408.
    let started = Instant::now();
    let cut = server.request("GET", "/slow?ms=5000", Auth::None);
    assert_eq!(cut.status, 408, "{}", cut.body);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // A request in flight when SIGTERM comes is answered before the process ends.
    let mut stream = support::connect(server.address);
    write_request(&mut stream, "GET", "/slow?ms=200", Auth::None);
    // Another request answered after it was sent: the slow one was accepted before.
    assert_eq!(server.request("GET", "/", Auth::None).status, 200);
    server.signal("TERM");
    let answer = read_response(&mut stream).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["slept_ms"], 200);
    assert_eq!(server.wait_exit(), Some(0), "{}", server.log());
}
