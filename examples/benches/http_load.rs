//! DESIGN.md's load target: under HTTP load at full throughput with 20 reloads a second,
//! no request fails and throughput stays ≥ 97% of the same load without reloads.
//!
//! Run with `cargo bench -p eac-examples --bench http_load` (the release `live_server`
//! is built first). It starts `live_server` and drives `GET /` (two sections read from
//! the pinned snapshot) from keep-alive connections in windows that alternate: no
//! reloads, 20 reloads a second (an edit of `app.toml` and a SIGHUP every 50 ms), no
//! reloads, … It prints requests per second of each window, the failures, the versions
//! published, and the median over the rounds of each reloading window's rate against
//! the mean of the two quiet windows around it. `EAC_LOAD_SECONDS` (default 2) sets a
//! window, `EAC_LOAD_ROUNDS` (default 5) the reloading windows, `EAC_LOAD_CONNECTIONS`
//! (default 8) the connections. Every response is checked: status 200, and the
//! `x-eac-version` header equal to the version in the body (one version per request).
//!
//! `EAC_LOAD_MODE=canary`: the other windows run with an in-process canary instead of
//! reloads (`--reload canary`, a canary started by `POST canary` before each and
//! aborted after it, serving 5% of the requests: each request has its own
//! `x-user` key), to measure what a running canary costs the layer and the service.
//!
//! `EAC_LOAD_PREVIOUS=/path/to/an/older/live_server`: no reloads (a build from before
//! `live_server` handled SIGHUP would die of one); today's `live_server`
//! and that binary (built from an earlier commit, e.g. in a `git worktree` with its own
//! `CARGO_TARGET_DIR`) run side by side, each on its own copy of the config and state
//! dir with the same flags and variables (`--config-dir`, `--state-dir`, `--listen`:
//! flags every build accepts), and take turns under the same load: each round is one
//! window on each, the order swapped every round so that a drift of the machine's
//! speed does not favour one side. It prints both rates of each round, their ratio,
//! and the median of the ratios (today's against the previous build's). For example:
//! `git worktree add ../old <commit> && (cd ../old && CARGO_TARGET_DIR=../old-target cargo
//! build --release -p eac-examples --bin live_server)`, then
//! `EAC_LOAD_PREVIOUS=../old-target/release/live_server EAC_LOAD_CONNECTIONS=32
//! cargo bench -p eac-examples --bench http_load`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eac_tests::APP_TOML;
use support::{Auth, Launch, Server};

/// What one window of load saw.
#[derive(Debug, Default)]
struct Window {
    ok: u64,
    failed: u64,
    seconds: f64,
}

impl Window {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

/// One keep-alive connection's loop until `stop`; counts answers that are right.
fn client(address: SocketAddr, stop: &AtomicBool, ok: &AtomicU64, failed: &AtomicU64) {
    let mut connection: Option<BufReader<TcpStream>> = None;
    let mut n: u64 = fastrand::u64(..);
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_add(1);
        let reader = match &mut connection {
            Some(reader) => reader,
            None => match TcpStream::connect(address) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    connection.insert(BufReader::new(stream))
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        match exchange(reader, n) {
            Ok(true) => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) | Err(_) => {
                failed.fetch_add(1, Ordering::Relaxed);
                connection = None;
            }
        }
    }
}

/// One `GET /` on a kept-alive connection: `Ok(true)` for a 200 whose header and
/// body name the same version.
fn exchange(reader: &mut BufReader<TcpStream>, user: u64) -> std::io::Result<bool> {
    let request = format!("GET / HTTP/1.1\r\nhost: load\r\nx-user: {user}\r\n\r\n");
    reader.get_mut().write_all(request.as_bytes())?;
    let mut status = 0;
    let mut length = 0usize;
    let mut header_version = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(rest) = l.strip_prefix("HTTP/1.1 ") {
            status = rest
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        } else if let Some((name, value)) = l.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("x-eac-version") {
                header_version = value.parse::<u64>().ok();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Ok(status == 200 && header_version.is_some() && body["version"].as_u64() == header_version)
}

/// Load for `seconds` over `connections`, with `reload` running beside it if given.
fn window(
    server: &Server,
    connections: usize,
    seconds: f64,
    reload: Option<&(dyn Fn(&AtomicBool) + Sync)>,
) -> Window {
    let stop = AtomicBool::new(false);
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..connections {
            scope.spawn(|| client(server.address, &stop, &ok, &failed));
        }
        if let Some(reload) = reload {
            scope.spawn(|| reload(&stop));
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    Window {
        ok: ok.into_inner(),
        failed: failed.into_inner(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs benches as tests: keep that to a smoke run.
    let smoke = std::env::args().any(|a| a == "--test");
    let (seconds, rounds): (f64, usize) = if smoke {
        (0.3, 1)
    } else {
        (
            env_or("EAC_LOAD_SECONDS", 2.0),
            env_or("EAC_LOAD_ROUNDS", 5),
        )
    };
    let connections: usize = env_or("EAC_LOAD_CONNECTIONS", 8);

    if let Some(previous) = std::env::var_os("EAC_LOAD_PREVIOUS") {
        against_previous(Path::new(&previous), connections, seconds, rounds);
        return;
    }
    let canary_mode = std::env::var("EAC_LOAD_MODE").is_ok_and(|m| m == "canary");
    let config = tempfile::tempdir().expect("a temp dir");
    // Owner-only, as a state dir must be.
    let state = eac_tests::private_dir();
    let file = config.path().join("app.toml");
    std::fs::write(&file, APP_TOML).expect("write app.toml");
    let launch = Launch::new(config.path(), state.path())
        // The reloads come from the signals; the watcher only re-reads.
        .env("EAC_WATCH_DEBOUNCE_MS", "1000");
    let server = if canary_mode {
        launch
            .arg("--reload")
            .arg("canary")
            .env("EAC_CANARY_SHARE", "0.05")
            .env("EAC_CANARY_WINDOW_MS", "86400000")
            .env("EAC_CANARY_KEY_HEADER", "x-user")
            .start()
    } else {
        launch.start()
    };
    let canaries = AtomicU64::new(0);
    // Each canary a content of its own: an aborted one is not canaried again.
    let start_canary = || {
        let n = canaries.fetch_add(1, Ordering::Relaxed);
        let body = format!(r#"{{"greeting": {{"message": "canary {n}"}}}}"#);
        let request = format!(
            "POST /_internal/eac/canary HTTP/1.1\r\nhost: localhost\r\nx-eac-refresh-token: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            support::TOKEN,
            body.len()
        );
        let answer = support::exchange(server.address, &request);
        assert_eq!(answer.status, 200, "POST canary: {}", answer.body);
    };
    let abort_canary = || {
        let answer = server.request("POST", "/_internal/eac/canary/abort", Auth::Admin);
        assert_eq!(answer.status, 200, "POST canary/abort: {}", answer.body);
    };

    let edits = Arc::new(AtomicU64::new(0));
    let reload = |stop: &AtomicBool| {
        let tmp = config.path().join(".app.toml.tmp");
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let n = edits.fetch_add(1, Ordering::Relaxed);
            let text = APP_TOML.replace("\"hello\"", &format!("\"hello {n}\""));
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, &file).expect("rename");
            // SIGHUP: a reload through the coordinator, as an operator's signal.
            server.signal("HUP");
            next += Duration::from_millis(50);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    };

    let version = || server.get("/", Auth::None)["version"].as_u64().unwrap_or(0);
    // Quiet and reloading windows alternate, starting and ending quiet: each reloading
    // window is compared with the two quiet ones around it, so that a drift of the
    // machine's speed over the run (other work on it) moves both sides of a ratio.
    let mut quiet = vec![window(&server, connections, seconds, None)];
    let mut loaded = Vec::new();
    let mut published = 0;
    for _ in 0..rounds {
        let v0 = version();
        if canary_mode {
            start_canary();
            loaded.push(window(&server, connections, seconds, None));
            abort_canary();
        } else {
            loaded.push(window(&server, connections, seconds, Some(&reload)));
        }
        published += version() - v0;
        quiet.push(window(&server, connections, seconds, None));
    }
    server.terminate();

    let mut ratios: Vec<f64> = loaded
        .iter()
        .enumerate()
        .map(|(i, w)| w.rate() / ((quiet[i].rate() + quiet[i + 1].rate()) / 2.0))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let reload_seconds: f64 = loaded.iter().map(|w| w.seconds).sum();
    let failed: u64 = quiet.iter().chain(&loaded).map(|w| w.failed).sum();
    let what = if canary_mode {
        "a canary serving 5%"
    } else {
        "20 reloads/s"
    };
    println!(
        "http_load: {connections} keep-alive connections, GET /, {rounds} rounds of {seconds} s \
         windows, quiet and {what} alternating"
    );
    for (i, q) in quiet.iter().enumerate() {
        println!(
            "  no reloads        {:>9.0} req/s  ({} ok, {} failed)",
            q.rate(),
            q.ok,
            q.failed
        );
        if let Some(w) = loaded.get(i) {
            println!(
                "  {what:<17} {:>9.0} req/s  ({} ok, {} failed)   ratio to the quiet ones around it {:.3}",
                w.rate(),
                w.ok,
                w.failed,
                w.rate() / ((q.rate() + quiet[i + 1].rate()) / 2.0)
            );
        }
    }
    println!(
        "  versions published during the reloading windows: {published} ({:.1}/s)",
        published as f64 / reload_seconds
    );
    println!(
        "  throughput with {what} / without, median of {rounds} rounds: {ratio:.3} (target ≥ 0.97); \
         failed requests: {failed} (target 0)"
    );
    assert_eq!(failed, 0, "failed requests");
}

/// `EAC_LOAD_PREVIOUS`: today's `live_server` against `previous`, quiet windows taking
/// turns (see the module doc).
fn against_previous(previous: &Path, connections: usize, seconds: f64, rounds: usize) {
    assert!(
        previous.is_file(),
        "EAC_LOAD_PREVIOUS={} is not a file: give the path of an older live_server binary",
        previous.display()
    );
    // Each server its own dirs: a state dir is locked by the process that uses it.
    let dirs: Vec<_> = (0..2)
        .map(|_| {
            let config = tempfile::tempdir().expect("a temp dir");
            std::fs::write(config.path().join("app.toml"), APP_TOML).expect("write app.toml");
            (config, eac_tests::private_dir())
        })
        .collect();
    let launch = |(config, state): &(tempfile::TempDir, tempfile::TempDir)| {
        Launch::new(config.path(), state.path()).env("EAC_WATCH_DEBOUNCE_MS", "1000")
    };
    let today = launch(&dirs[0]).start();
    // The harness starts its own binary through `sh -c "<prefix>; exec <binary> <args>"`:
    // a prefix that execs the previous build with the same arguments starts that instead.
    let quoted = previous.display().to_string().replace('\'', r"'\''");
    let before = launch(&dirs[1])
        .shell(&format!("exec '{quoted}' \"$@\""))
        .start();

    let mut pairs = Vec::new();
    for round in 0..rounds {
        // Today first in even rounds, the previous build first in odd ones.
        let (first, second) = if round % 2 == 0 {
            (&today, &before)
        } else {
            (&before, &today)
        };
        let a = window(first, connections, seconds, None);
        let b = window(second, connections, seconds, None);
        pairs.push(if round % 2 == 0 { (a, b) } else { (b, a) });
    }
    today.terminate();
    before.terminate();

    println!(
        "http_load: {connections} keep-alive connections, GET /, {rounds} rounds of {seconds} s \
         windows, today's live_server and {} taking turns",
        previous.display()
    );
    let mut ratios = Vec::new();
    for (round, (now, then)) in pairs.iter().enumerate() {
        let ratio = now.rate() / then.rate();
        ratios.push(ratio);
        let order = if round % 2 == 0 {
            "today first   "
        } else {
            "previous first"
        };
        println!(
            "  {order}  today {:>9.0} req/s ({} failed)   previous {:>9.0} req/s ({} failed)   ratio {ratio:.3}",
            now.rate(),
            now.failed,
            then.rate(),
            then.failed
        );
    }
    ratios.sort_by(f64::total_cmp);
    let middle = ratios.len() / 2;
    // An even number of rounds: the mean of the middle two.
    let ratio = if ratios.len() % 2 == 0 {
        (ratios[middle - 1] + ratios[middle]) / 2.0
    } else {
        ratios[middle]
    };
    let failed: u64 = pairs.iter().map(|(a, b)| a.failed + b.failed).sum();
    println!(
        "  throughput today / previous build, median of {rounds} rounds: {ratio:.3}; \
         failed requests: {failed} (target 0)"
    );
    assert_eq!(failed, 0, "failed requests");
}
