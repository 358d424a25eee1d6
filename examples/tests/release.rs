//! `live_server release`: a gray release across a fleet of `live_server` processes on a
//! real etcd, under real HTTP load on loopback (feature `etcd`).
#![cfg(feature = "etcd")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Auth, Launch, Server};

/// One answer of the load: which member, when, its status, version and message.
#[derive(Debug, Clone)]
struct Seen {
    member: usize,
    at: Instant,
    status: u16,
    version: Option<u64>,
    message: String,
}

/// `GET /` on every member in turn, until stopped; every answer kept.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(fleet: &[Server]) -> Load {
        let addresses: Vec<_> = fleet.iter().map(|s| s.address).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (member, address) in addresses.iter().enumerate() {
                        let response = Server::request_to(*address, "GET", "/", Auth::None);
                        let message = response.json()["message"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        seen.lock().unwrap().push(Seen {
                            member,
                            at: Instant::now(),
                            status: response.status,
                            version: response.version(),
                            message,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Load {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Waits (at most 10 s) until the load has seen each of `members` answer as `done`
    /// says: a member's own `until` can see it first, between two of the load's rounds.
    fn until_each(&self, members: usize, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let missing: Vec<usize> = {
                let seen = self.seen.lock().unwrap();
                (0..members)
                    .filter(|&m| !seen.iter().any(|s| s.member == m && done(s)))
                    .collect()
            };
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the load never saw members {missing:?} answer so"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn stop(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A fleet of `n` members on one etcd prefix, each SYNCED; their ids in order.
fn fleet(
    prefix: &str,
    n: usize,
) -> (
    eac_tests::etcd::EtcdServer,
    Vec<Server>,
    Vec<String>,
    Vec<tempfile::TempDir>,
) {
    // The config dir is kept with the state dirs: the members read it on each reload.
    let (etcd, _client, config) = support::etcd_fleet_ground(prefix, "hello");
    let states: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let fleet: Vec<Server> = states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            Launch::new(config.path(), state.path())
                .arg("--etcd")
                .arg(&etcd.endpoint())
                .arg("--fleet-label")
                .arg(&format!("zone={}", if i == 0 { "a" } else { "b" }))
                .env("EAC_ETCD_PREFIX", prefix)
                // The environment is above etcd: the release's `shout` must not be.
                .env_remove("APP_FEATURES__SHOUT")
                .start()
        })
        .collect();
    let view = fleet[n - 1].until("/_internal/eac/fleet", |f| {
        f["members"]
            .as_array()
            .is_some_and(|m| m.len() == n && m.iter().all(|m| m["state"] == "SYNCED"))
    });
    // Each member's id, in the fleet's order: the one whose address is in it.
    let ids = fleet
        .iter()
        .map(|s| {
            let port = format!(":{}", s.address.port());
            view["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["id"].as_str())
                .find(|id| id.ends_with(&port))
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut dirs = states;
    dirs.push(config);
    (etcd, fleet, ids, dirs)
}

/// `live_server release …` with `--etcd` and `--etcd-prefix`, started; stdout piped.
fn release(endpoint: &str, prefix: &str, args: &[&str], stdin: &str) -> Child {
    let mut all = vec!["release"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--etcd", endpoint, "--etcd-prefix", prefix]);
    support::tool(&all, stdin)
}

/// Runs a release to its end: exit code, stdout, stderr.
fn release_to_end(
    endpoint: &str,
    prefix: &str,
    args: &[&str],
    stdin: &str,
) -> (Option<i32>, String, String) {
    support::finish(release(endpoint, prefix, args, stdin))
}

/// Reads a `release` command's stdout until its canaries serve the candidate: the
/// release's id (its first line's second word) and every line read.
fn until_canaries_serve(child: &mut Child) -> (String, String) {
    let out = read_until(child, "canaries serving it");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    (id, out)
}

/// Reads `child`'s stdout until a line contains `text`; every line read.
fn read_until(child: &mut Child, text: &str) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut out = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the release ended before `{text}`:\n{out}");
        out += &line;
        if line.contains(text) {
            return out;
        }
    }
}

/// The versions a member served, in order, each once.
fn versions_of(seen: &[Seen], member: usize) -> Vec<u64> {
    let mut versions: Vec<u64> = Vec::new();
    for s in seen.iter().filter(|s| s.member == member) {
        if let Some(v) = s.version
            && versions.last() != Some(&v)
        {
            versions.push(v);
        }
    }
    versions
}

#[test]
fn a_release_by_id_serves_only_that_member_then_is_promoted_to_every_member() {
    const PREFIX: &str = "/eac/release-id/";
    let (etcd, fleet, ids, _states) = fleet(PREFIX, 3);
    let load = Load::start(&fleet);
    let started = Instant::now();
    let (code, out, err) = release_to_end(
        &etcd.endpoint(),
        PREFIX,
        &[
            "features",
            "-",
            "--canary-ids",
            &ids[1],
            "--window",
            "2s",
            "--min-requests",
            "30",
        ],
        r#"{"shout": true}"#,
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("for 1 canary member(s): {};", ids[1])),
        "{out}"
    );
    assert!(
        out.contains(&format!("canaries serving it: {}", ids[1])),
        "{out}"
    );
    assert!(out.contains("promoted: 5xx 0.0% vs 0.0%"), "{out}");
    for server in &fleet {
        server.until("/", |b| b["message"] == "HELLO");
    }
    load.until_each(fleet.len(), |s| s.message == "HELLO");
    let seen = load.stop();
    // The canary shouted first, the others only after the window, each through one
    // new version (the promotion's); the canary's content did not change again.
    let first_shout = |member: usize| {
        seen.iter()
            .find(|s| s.member == member && s.message == "HELLO")
            .map(|s| s.at)
            .unwrap_or_else(|| panic!("member {member} never shouted"))
    };
    let canary_at = first_shout(1);
    for stable in [0, 2] {
        assert!(
            first_shout(stable) >= canary_at + Duration::from_secs(2),
            "member {stable} served the candidate {:?} after the canary",
            first_shout(stable) - canary_at
        );
        assert_eq!(versions_of(&seen, stable).len(), 2, "member {stable}");
    }
    assert_eq!(versions_of(&seen, 1).len(), 2, "the canary");
    assert!(seen.iter().all(|s| s.status == 200));
    assert!(started.elapsed() >= Duration::from_secs(2));

    // A stable member's version says where it came from: the release's promotion.
    let status = fleet[0].get("/_internal/eac/status", Auth::Admin);
    assert_eq!(status["origin"]["kind"], "release", "{status}");
    assert_eq!(status["origin"]["step"], "promote", "{status}");

    // The record says so; `fleet` shows no release in flight.
    let view = fleet[0].get("/_internal/eac/fleet", Auth::Admin);
    let record = &view["releases"][0];
    assert_eq!(record["state"], "promoted", "{view}");
    assert_eq!(record["canaries"], serde_json::json!([ids[1]]));
    for server in fleet {
        server.terminate();
    }
}

#[test]
fn a_hurting_release_is_aborted_by_the_judge_and_no_stable_member_serves_it() {
    const PREFIX: &str = "/eac/release-hurt/";
    let (etcd, fleet, ids, _states) = fleet(PREFIX, 3);
    let before: Vec<u64> = fleet
        .iter()
        .map(|s| s.get("/", Auth::None)["version"].as_u64().unwrap())
        .collect();
    let load = Load::start(&fleet);
    let started = Instant::now();
    // A third of the fleet: one canary, by a hash of the release's id and theirs.
    let (code, out, err) = release_to_end(
        &etcd.endpoint(),
        PREFIX,
        &[
            "features",
            "-",
            "--canary",
            "25%",
            "--window",
            "10s",
            "--min-requests",
            "30",
        ],
        r#"{"fail_ratio": 0.5}"#,
    );
    let took = started.elapsed();
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.contains("aborted: canary: 5xx"), "{out}");
    assert!(took < Duration::from_secs(11), "decided after {took:?}");
    let canary = ids
        .iter()
        .position(|id| out.contains(&format!("canary member(s): {id}")))
        .unwrap_or_else(|| panic!("no canary named: {out}"));
    // The canary goes back to the prefix's configuration: a new version, origin
    // `abort <release>`.
    let release = out.split_whitespace().nth(1).unwrap().to_owned();
    let status = fleet[canary].until("/_internal/eac/status", |s| {
        s["origin"]["kind"] == "release" && s["origin"]["step"] == "abort"
    });
    assert_eq!(status["origin"]["release"], release.as_str());
    let seen = load.stop();
    for (member, server) in fleet.iter().enumerate() {
        let body = server.get("/", Auth::None);
        assert_eq!(body["message"], "hello");
        if member == canary {
            // It served the candidate (its 500s among them), then the main one again.
            assert!(seen.iter().any(|s| s.member == member && s.status == 500));
            assert_eq!(
                versions_of(&seen, member).len(),
                3,
                "{:?}",
                versions_of(&seen, member)
            );
        } else {
            // Never the candidate: never a 500, never another version.
            assert!(
                seen.iter()
                    .filter(|s| s.member == member)
                    .all(|s| s.status == 200 && s.version == Some(before[member])),
                "stable member {member}"
            );
        }
    }
    // Its metrics: the release aborted (-1) on every member, and each member's requests
    // counted under its role, by the in-process canary's names.
    let stable = (canary + 1) % fleet.len();
    for (member, role) in [(canary, "canary"), (stable, "stable")] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let page = loop {
            let page = fleet[member]
                .request("GET", "/_internal/eac/metrics", Auth::Admin)
                .body;
            if page.contains(&format!("eac_release_state{{release=\"{release}\"}} -1")) {
                break page;
            }
            assert!(Instant::now() < deadline, "member {member}: {page}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            page.contains(&format!("eac_canary_requests_total{{role=\"{role}\"}}")),
            "member {member}: {page}"
        );
    }
    // A release without a record cannot be decided.
    let reply = fleet[0].request(
        "POST",
        "/_internal/eac/release/1700000000000-0000/abort",
        Auth::Admin,
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(reply.body.contains("has no record"), "{}", reply.body);

    let view = fleet[0].get("/_internal/eac/fleet", Auth::Admin);
    assert_eq!(view["releases"][0]["state"], "aborted", "{view}");
    assert!(
        view["releases"][0]["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("canary: 5xx")),
        "{view}"
    );
    for server in fleet {
        server.terminate();
    }
}

#[test]
fn a_release_whose_command_dies_is_finished_by_the_fleet_and_a_second_one_is_refused() {
    const PREFIX: &str = "/eac/release-kill/";
    let (etcd, fleet, ids, _states) = fleet(PREFIX, 2);
    let endpoint = etcd.endpoint();
    let load = Load::start(&fleet);
    // By label: the member labelled zone=a.
    let mut first = release(
        &endpoint,
        PREFIX,
        &[
            "features",
            "-",
            "--canary-label",
            "zone=a",
            "--window",
            "3s",
            "--min-requests",
            "20",
        ],
        r#"{"shout": true}"#,
    );
    let (id, out) = until_canaries_serve(&mut first);
    assert!(
        out.contains(&format!("for 1 canary member(s): {};", ids[0])),
        "{out}"
    );

    // A second release (or a put) while one is in flight is refused, naming it.
    let (code, out2, err2) = release_to_end(
        &endpoint,
        PREFIX,
        &["greeting", "-", "--canary", "50%"],
        r#"{"message": "other"}"#,
    );
    assert_eq!(code, Some(5), "{out2}{err2}");
    assert!(
        err2.contains(&format!("release {id} (of features) is in flight")),
        "{err2}"
    );
    let (code, out3, _) =
        support::tool_to_end(&["fleet", "--etcd", &endpoint, "--etcd-prefix", PREFIX], "");
    assert!(
        out3.contains(&format!("release {id} in flight: features")),
        "{code:?} {out3}"
    );

    // The command dies mid-window: its lease runs out, a member takes the judging
    // over, and the release is promoted; no member stays on the staged candidate.
    first.kill().unwrap();
    first.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = fleet[1].get("/_internal/eac/fleet", Auth::Admin);
        let state = &view["releases"][0]["state"];
        if state == "promoted" {
            break;
        }
        assert!(Instant::now() < deadline, "never decided: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for server in &fleet {
        server.until("/", |b| b["message"] == "HELLO");
    }
    let seen = load.stop();
    assert!(seen.iter().all(|s| s.status == 200));
    let logs: String = fleet.iter().map(Server::log).collect();
    assert!(logs.contains("this member judges it"), "{logs}");

    // A release decided by hand: the one in flight is aborted, its canary back.
    let mut third = release(
        &endpoint,
        PREFIX,
        &["features", "-", "--canary-ids", &ids[1], "--window", "60s"],
        r#"{"shout": false}"#,
    );
    let (id, _) = until_canaries_serve(&mut third);
    fleet[1].until("/", |b| b["message"] == "hello");
    let (code, stdout, _) = support::tool_to_end(
        &[
            "release",
            "abort",
            &id,
            "--etcd",
            &endpoint,
            "--etcd-prefix",
            PREFIX,
        ],
        "",
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("aborted: aborted by hand"), "{stdout}");
    let code = third.wait().unwrap().code();
    assert_eq!(code, Some(3));
    fleet[1].until("/", |b| b["message"] == "HELLO");
    for server in fleet {
        server.terminate();
    }
}

#[test]
fn a_release_in_flight_is_promoted_by_hand_from_the_command_and_from_the_admin_route() {
    const PREFIX: &str = "/eac/release-hand/";
    let (etcd, fleet, ids, _states) = fleet(PREFIX, 2);
    let endpoint = etcd.endpoint();
    let mut client = etcd.blocking_client(PREFIX);
    // What the prefix holds but the members' records (they write their counts each
    // second during a release).
    let mut written = || -> Vec<(String, i64)> {
        client
            .keys()
            .into_iter()
            .filter(|(key, _)| !key.starts_with(&format!("{PREFIX}.instances/")))
            .collect()
    };
    let promoted_by_hand = |view: &serde_json::Value, id: &str| {
        let record = view["releases"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no record of {id}: {view}"));
        assert_eq!(record["state"], "promoted", "{record}");
        record["why"].as_str().unwrap_or_default().to_owned()
    };

    // A release of `features` to the first member, for a window no test waits out.
    let mut first = release(
        &endpoint,
        PREFIX,
        &["features", "-", "--canary-ids", &ids[0], "--window", "10m"],
        r#"{"shout": true}"#,
    );
    let (id, _) = until_canaries_serve(&mut first);
    fleet[0].until("/", |b| b["message"] == "HELLO");

    // A second release of the same section is refused, exit 5, naming the first; nothing
    // is written.
    let before = written();
    let (code, out2, err2) = release_to_end(
        &endpoint,
        PREFIX,
        &["features", "-", "--canary-ids", &ids[1], "--window", "1s"],
        r#"{"shout": false}"#,
    );
    assert_eq!(code, Some(5), "{out2}{err2}");
    assert!(
        err2.contains(&format!("release {id} (of features) is in flight")),
        "{err2}"
    );
    assert_eq!(written(), before, "nothing written");
    assert_eq!(fleet[1].get("/", Auth::None)["message"], "hello");

    // Promoted by hand with `release promote ID`: every member serves it, and the
    // command that started it ends with the promotion (exit 0).
    let (code, stdout, stderr) = support::tool_to_end(
        &[
            "release",
            "promote",
            &id,
            "--etcd",
            &endpoint,
            "--etcd-prefix",
            PREFIX,
        ],
        "",
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("release {id}: promoted: promoted by hand (")),
        "{stdout}"
    );
    let (code, out, err) = support::finish(first);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("promoted: promoted by hand ("), "{out}");
    for server in &fleet {
        server.until("/", |b| b["message"] == "HELLO");
    }
    let status = fleet[1].get("/_internal/eac/status", Auth::Admin);
    assert_eq!(status["origin"]["step"], "promote", "{status}");
    let why = promoted_by_hand(&fleet[1].get("/_internal/eac/fleet", Auth::Admin), &id);
    assert!(why.starts_with("promoted by hand ("), "{why}");

    // Another, to the second member, promoted through the admin route.
    let mut second = release(
        &endpoint,
        PREFIX,
        &["features", "-", "--canary-ids", &ids[1], "--window", "10m"],
        r#"{"shout": false}"#,
    );
    let (id, _) = until_canaries_serve(&mut second);
    fleet[1].until("/", |b| b["message"] == "hello");
    assert_eq!(fleet[0].get("/", Auth::None)["message"], "HELLO");
    let route = format!("/_internal/eac/release/{id}/promote");
    // The read-only token cannot decide it.
    assert_eq!(fleet[0].request("POST", &route, Auth::Read).status, 403);
    let reply = fleet[0].request("POST", &route, Auth::Admin);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = reply.json();
    assert_eq!(reply["release"], id.as_str(), "{reply}");
    assert_eq!(reply["decision"], "promoted", "{reply}");
    // By whom: the admin's peer address.
    assert!(
        reply["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("promoted by hand (127.0.0.1:")),
        "{reply}"
    );
    let (code, out, err) = support::finish(second);
    assert_eq!(code, Some(0), "{out}{err}");
    for server in &fleet {
        server.until("/", |b| b["message"] == "hello");
    }
    let view = fleet[0].get("/_internal/eac/fleet", Auth::Admin);
    assert_eq!(promoted_by_hand(&view, &id), reply["why"].as_str().unwrap());
    // What the prefix holds is the promoted section, no staged candidate left.
    let keys = written();
    assert!(
        keys.iter().any(|(k, _)| k == &format!("{PREFIX}features")),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|(k, _)| k.contains("/.staged/")),
        "{keys:?}"
    );
    for server in fleet {
        server.terminate();
    }
}
