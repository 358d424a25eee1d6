//! A gray release on a fleet under load: N `live_server` processes (8 by default) on one
//! local etcd, every one answering `GET /` to load threads all along, and rounds of two
//! releases to 2 of them (`--canaries`) by id:
//!
//! 1. a hurting one (`[features] fail_ratio = 0.5`), which the judge aborts: from the
//!    command's start to both canaries serving it, from the decision to both back, and
//!    the requests the fleet answered with it as a share of all it answered from the
//!    release's start to the canaries' return — against the target of the canary share
//!    times the share of that time the canaries served it;
//! 2. a good one (a new greeting), which the judge promotes after its window
//!    (`--window-ms`, 2000): from the start to the canaries serving it, and from the
//!    decision to all N serving it.
//!
//! `cargo bench -p eac-examples --features etcd --bench release [-- --instances 8
//! --canaries 2 --rounds 5 --window-ms 2000 --threads 4]` (needs `etcd` on PATH).

#[path = "common/fleet.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Instance, PREFIX, flag, ms, percentile};
use eac_tests::APP_TOML;
use eac_tests::etcd::EtcdServer;

/// One answer: which member, when, its version.
#[derive(Clone, Copy)]
struct Seen {
    member: usize,
    at: Instant,
    version: u64,
}

/// Load threads, each with a kept-alive connection to every member, asking in turn.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(fleet: &[Instance], threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let addresses: Vec<_> = fleet.iter().map(|i| i.address).collect();
        let threads = (0..threads)
            .map(|_| {
                let (stop, seen, addresses) =
                    (Arc::clone(&stop), Arc::clone(&seen), addresses.clone());
                std::thread::spawn(move || {
                    let mut conns: Vec<_> = addresses.iter().map(|a| Conn::open(*a)).collect();
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        for (member, conn) in conns.iter_mut().enumerate() {
                            let version = conn.version();
                            mine.push(Seen {
                                member,
                                at: Instant::now(),
                                version,
                            });
                        }
                        if mine.len() >= 1024 {
                            seen.lock().unwrap().append(&mut mine);
                        }
                    }
                    seen.lock().unwrap().append(&mut mine);
                })
            })
            .collect();
        Load {
            stop,
            seen,
            threads,
        }
    }

    /// Every answer so far, in time order.
    fn take(&self) -> Vec<Seen> {
        let mut seen = std::mem::take(&mut *self.seen.lock().unwrap());
        seen.sort_by_key(|s| s.at);
        seen
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
    }
}

/// A kept-alive connection that reads only the version of each answer.
struct Conn {
    reader: BufReader<std::net::TcpStream>,
    request: Vec<u8>,
}

impl Conn {
    fn open(address: std::net::SocketAddr) -> Conn {
        let stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(stream),
            request: format!("GET / HTTP/1.1\r\nHost: {address}\r\n\r\n").into_bytes(),
        }
    }

    fn version(&mut self) -> u64 {
        self.reader.get_mut().write_all(&self.request).unwrap();
        common::answer(&mut self.reader).0
    }
}

/// A release run to its end: when it started, when each of its lines was printed, its
/// exit code.
fn release(etcd: &str, args: &[&str], stdin: &str) -> (Instant, Vec<(Instant, String)>, i32) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_live_server"))
        .args(["release", "--etcd", etcd, "--etcd-prefix", PREFIX])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run live_server release");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        lines.push((Instant::now(), line.unwrap()));
    }
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (started, lines, code)
}

/// When a line starting with `prefix` was printed.
fn printed(lines: &[(Instant, String)], prefix: &str) -> Instant {
    lines
        .iter()
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(at, _)| *at)
        .unwrap_or_else(|| {
            panic!(
                "no line `{prefix}` in {lines:?}",
                lines = lines.iter().map(|(_, l)| l).collect::<Vec<_>>()
            )
        })
}

/// When `member` first answered with a version above `above`, after `from`.
fn first_above(seen: &[Seen], member: usize, above: u64, from: Instant) -> Option<Instant> {
    seen.iter()
        .find(|s| s.member == member && s.at >= from && s.version > above)
        .map(|s| s.at)
}

fn main() {
    let instances = flag("--instances", 8) as usize;
    let canaries = flag("--canaries", 2) as usize;
    let rounds = flag("--rounds", 5) as usize;
    let window = Duration::from_millis(flag("--window-ms", 2000));
    let threads = flag("--threads", 4) as usize;
    let etcd = EtcdServer::start();
    let mut client = etcd.blocking_client(PREFIX);
    client.put("greeting", r#"{"message": "start"}"#);
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("app.toml"), APP_TOML).unwrap();
    let states: Vec<_> = (0..instances).map(|_| eac_tests::private_dir()).collect();
    let mut fleet: Vec<Instance> = states
        .iter()
        .map(|s| Instance::start(config.path(), s.path(), &etcd.endpoint()))
        .collect();
    // The members' ids, in the fleet's order.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reader = runtime
        .block_on(eac_accessor::source::Etcd::connect(
            eac_accessor::source::EtcdOptions::new([etcd.endpoint()], PREFIX),
        ))
        .expect("connect");
    let ids: Vec<String> = loop {
        let view = runtime.block_on(reader.fleet_view()).expect("fleet view");
        let members = view["members"].as_array().cloned().unwrap_or_default();
        if members.len() == instances {
            break fleet
                .iter()
                .map(|i| {
                    let port = format!(":{}", i.address.port());
                    members
                        .iter()
                        .filter_map(|m| m["id"].as_str())
                        .find(|id| id.ends_with(&port))
                        .unwrap()
                        .to_owned()
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let chosen = ids[..canaries].join(",");
    let load = Load::start(&fleet, threads);

    let (mut to_canaries, mut to_back, mut to_all, mut to_good_canaries) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut served_for, mut hurting, mut answered) = (Vec::new(), 0, 0);
    let run = Instant::now();
    for round in 0..rounds {
        // 1. A hurting release, aborted by the judge.
        let window_arg = format!("{}ms", window.as_millis());
        answered += load.take().len();
        let before: Vec<u64> = fleet.iter_mut().map(|i| i.get("/").0).collect();
        let (started, lines, code) = release(
            &etcd.endpoint(),
            &[
                "features",
                "-",
                "--canary-ids",
                &chosen,
                "--window",
                "30s",
                "--min-requests",
                "100",
            ],
            r#"{"fail_ratio": 0.5}"#,
        );
        assert_eq!(
            code,
            3,
            "round {round}: the hurting release was not aborted: {lines:?}",
            lines = lines.iter().map(|(_, l)| l).collect::<Vec<_>>()
        );
        let decided = printed(&lines, "aborted:");
        // Until both canaries are back (a version above the hurting one).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let (serving, back) = loop {
            seen.extend(load.take());
            let serving: Option<Vec<Instant>> = (0..canaries)
                .map(|c| first_above(&seen, c, before[c], started))
                .collect();
            let back: Option<Vec<Instant>> = (0..canaries)
                .map(|c| first_above(&seen, c, before[c] + 1, started))
                .collect();
            if let (Some(serving), Some(back)) = (serving, back) {
                break (serving, back);
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the canaries never came back"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let all_serving = *serving.iter().max().unwrap();
        let all_back = *back.iter().max().unwrap();
        to_canaries.push(all_serving - started);
        to_back.push(all_back.saturating_duration_since(decided));
        // How long the canaries served it, and how many requests it answered.
        let first = serving.iter().copied().min().unwrap();
        served_for.push(all_back.saturating_duration_since(first));
        hurting += seen
            .iter()
            .filter(|s| s.member < canaries && s.version == before[s.member] + 1)
            .count();
        answered += seen.len();
        // Stable members never changed.
        let after: Vec<u64> = fleet.iter_mut().map(|i| i.get("/").0).collect();
        for member in canaries..instances {
            assert_eq!(
                after[member], before[member],
                "round {round}: stable member {member} changed"
            );
        }

        // 2. A good release, promoted after its window.
        answered += load.take().len();
        let before = after;
        let (started, lines, code) = release(
            &etcd.endpoint(),
            &[
                "greeting",
                "-",
                "--canary-ids",
                &chosen,
                "--window",
                &window_arg,
                "--min-requests",
                "100",
            ],
            &format!(r#"{{"message": "round {round}"}}"#),
        );
        assert_eq!(
            code,
            0,
            "round {round}: the good release was not promoted: {lines:?}",
            lines = lines.iter().map(|(_, l)| l).collect::<Vec<_>>()
        );
        let decided = printed(&lines, "promoted:");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let (serving, all) = loop {
            seen.extend(load.take());
            let serving: Option<Vec<Instant>> = (0..canaries)
                .map(|c| first_above(&seen, c, before[c], started))
                .collect();
            let all: Option<Vec<Instant>> = (canaries..instances)
                .map(|m| first_above(&seen, m, before[m], started))
                .collect();
            if let (Some(serving), Some(all)) = (serving, all) {
                break (serving, all);
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: not every member serves the promotion"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        answered += seen.len();
        to_good_canaries.push(*serving.iter().max().unwrap() - started);
        to_all.push(all.iter().max().unwrap().saturating_duration_since(decided));
    }
    answered += load.take().len();
    let run = run.elapsed();
    load.stop();
    for list in [
        &mut to_canaries,
        &mut to_back,
        &mut to_all,
        &mut to_good_canaries,
        &mut served_for,
    ] {
        list.sort();
    }
    let median = |v: &[Duration]| ms(percentile(v, 0.5));
    let worst = |v: &[Duration]| ms(v[v.len() - 1]);
    println!(
        "release: {instances} live_server under load ({threads} threads), {canaries} canaries by id, {rounds} rounds"
    );
    println!(
        "release: `release` started -> both canaries serving it: hurting p50 {:.1} ms, max {:.1} ms; good p50 {:.1} ms, max {:.1} ms",
        median(&to_canaries),
        worst(&to_canaries),
        median(&to_good_canaries),
        worst(&to_good_canaries),
    );
    println!(
        "release: abort decided -> both canaries back on the prefix's configuration: p50 {:.1} ms, max {:.1} ms",
        median(&to_back),
        worst(&to_back),
    );
    println!(
        "release: promotion decided -> all {instances} serving it: p50 {:.1} ms, max {:.1} ms",
        median(&to_all),
        worst(&to_all),
    );
    println!(
        "release: the hurting config served by the canaries for p50 {:.1} ms, max {:.1} ms (the window: {} ms)",
        median(&served_for),
        worst(&served_for),
        window.as_millis(),
    );
    // At most: the canaries' share of the requests for a whole window each round.
    let target = canaries as f64 / instances as f64 * (rounds as f64 * window.as_secs_f64())
        / run.as_secs_f64();
    println!(
        "release: requests answered with the hurting config: {hurting} of the fleet's {answered} over the {:.1} s run \
         = {:.3}% (target: at most the canary share x the windows' share of the run = {:.3}%)",
        run.as_secs_f64(),
        100.0 * hurting as f64 / answered.max(1) as f64,
        100.0 * target,
    );
    drop(fleet);
}
