//! A fleet on one etcd: N `live_server` processes (8 by default) on one local etcd.
//!
//! 1. `etcdctl`-style puts (a plain client): from the put until all N serve the new
//!    version (their `x-eac-version`), p50 and p99.
//! 2. `live_server put --wait`: the propagation each member measures from the release
//!    record to its readers seeing the change (its fleet record), the slowest and the
//!    fastest member per put, p50 and p99; and the whole command's wall time.
//! 3. A bad put, after which no instance may have changed.
//! 4. The fleet at rest: etcd's revision must not move (no member writes).
//!
//! `cargo bench -p eac-examples --features etcd --bench fleet [-- --instances 32 --puts 100
//! --rest-secs 60 --state-tmpfs 1]` (needs `etcd` on PATH).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eac_tests::APP_TOML;
use eac_tests::etcd::EtcdServer;

const PREFIX: &str = "/eac/bench/";

struct Instance {
    child: Child,
    conn: BufReader<TcpStream>,
    address: SocketAddr,
    /// Its log: kept out of the bench's output (a line per publish), shown if it fails.
    _log: tempfile::NamedTempFile,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    fn start(config: &std::path::Path, state: &std::path::Path, etcd: &str) -> Instance {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_live_server"))
            .args(["--config-dir", config.to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--etcd", etcd])
            .env("EAC_ETCD_PREFIX", PREFIX)
            .env("EAC_REFRESH_COOLDOWN_MS", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("start live_server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address: SocketAddr = line
            .split("http://")
            .nth(1)
            .and_then(|a| a.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!("no address in {line:?}; its log:\n{log}")
            });
        let stream = TcpStream::connect(address).unwrap();
        stream.set_nodelay(true).unwrap();
        Instance {
            child,
            conn: BufReader::new(stream),
            address,
            _log: log,
        }
    }

    /// `GET path` on the kept-alive connection: the `x-eac-version` and the body.
    fn get(&mut self, path: &str) -> (u64, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.address);
        self.conn.get_mut().write_all(request.as_bytes()).unwrap();
        let (mut version, mut length) = (0, 0);
        loop {
            let mut line = String::new();
            self.conn.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "x-eac-version" => version = value.trim().parse().unwrap_or(0),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        self.conn.read_exact(&mut body).unwrap();
        (version, String::from_utf8_lossy(&body).into_owned())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `--name N` from the command line, or `default`.
fn flag(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let instances = flag("--instances", 8) as usize;
    let puts = flag("--puts", 100) as usize;
    let rest = Duration::from_secs(flag("--rest-secs", 60));
    let etcd = EtcdServer::start();
    let mut client = etcd.blocking_client(PREFIX);
    let mut put = |value: String| client.put("greeting", value);
    put(r#"{"message": "start"}"#.into());

    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("app.toml"), APP_TOML).unwrap();
    // Owner-only, as a state dir must be.
    let states: Vec<_> = (0..instances).map(|_| eac_tests::private_dir()).collect();
    let mut fleet: Vec<Instance> = states
        .iter()
        .map(|s| Instance::start(config.path(), s.path(), &etcd.endpoint()))
        .collect();

    let mut latencies = Vec::with_capacity(puts);
    for i in 0..puts {
        let before: Vec<u64> = fleet.iter_mut().map(|s| s.get("/").0).collect();
        let started = Instant::now();
        put(format!(r#"{{"message": "put {i}"}}"#));
        let mut pending: Vec<usize> = (0..instances).collect();
        while !pending.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "put {i} not served by all"
            );
            pending.retain(|&n| fleet[n].get("/").0 <= before[n]);
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "fleet: {instances} live_server on one etcd, etcdctl-style put -> all {instances} serve it, over {puts} puts: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
    );

    // `live_server put --wait`: each member times its propagation from the release record.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let options = eac_accessor::source::EtcdOptions::new([etcd.endpoint()], PREFIX);
    let reader = runtime
        .block_on(eac_accessor::source::Etcd::connect(options))
        .expect("connect");
    let files = tempfile::tempdir().unwrap();
    let (mut slowest, mut fastest, mut walls) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..puts {
        let file = files.path().join("greeting.json");
        std::fs::write(&file, format!(r#"{{"message": "released {i}"}}"#)).unwrap();
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_live_server"))
            .args(["put", "--etcd", &etcd.endpoint(), "--etcd-prefix", PREFIX])
            .args(["greeting", file.to_str().unwrap(), "--wait=10s"])
            .output()
            .expect("run live_server put");
        walls.push(started.elapsed());
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "put {i}: {stdout}");
        let view = runtime.block_on(reader.fleet_view()).expect("fleet view");
        let took: Vec<f64> = view["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["propagation"]["from"] == "release")
            .filter_map(|m| m["propagation"]["seconds"].as_f64())
            .collect();
        assert_eq!(took.len(), instances, "put {i}: {view}");
        let secs = |s: f64| Duration::from_secs_f64(s);
        slowest.push(secs(took.iter().copied().fold(0.0, f64::max)));
        fastest.push(secs(took.iter().copied().fold(f64::MAX, f64::min)));
    }
    for list in [&mut slowest, &mut fastest, &mut walls] {
        list.sort();
    }
    println!(
        "fleet: {instances} live_server, `live_server put --wait` x {puts}: release record -> \
         every member serving it (the slowest member's own figure): p50 {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms; the fastest member: p50 {:.1} ms, p99 {:.1} ms; the command's wall \
         time (start, validate, write, wait for all ACKs): p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&slowest, 0.5)),
        ms(percentile(&slowest, 0.99)),
        ms(slowest[slowest.len() - 1]),
        ms(percentile(&fastest, 0.5)),
        ms(percentile(&fastest, 0.99)),
        ms(percentile(&walls, 0.5)),
        ms(percentile(&walls, 0.99)),
    );

    // A bad put: every instance rejects it (its status names the revision), none changes.
    let before: Vec<u64> = fleet.iter_mut().map(|s| s.get("/").0).collect();
    let bad = put(r#"{"message": ""}"#.into());
    let named = format!("etcd:{PREFIX}greeting@{bad}");
    for instance in &mut fleet {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !instance.get("/_internal/eac/status").1.contains(&named) {
            assert!(Instant::now() < deadline, "bad put not rejected");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let after: Vec<u64> = fleet.iter_mut().map(|s| s.get("/").0).collect();
    let changed = after.iter().zip(&before).filter(|(a, b)| a != b).count();

    println!(
        "fleet: bad put rejected by {instances} of {instances}; instances that changed version: {changed}"
    );
    assert_eq!(changed, 0);

    // At rest: keep-alives hold the leases; nothing is written.
    let before = client.revision();
    std::thread::sleep(rest);
    let moved = client.revision() - before;
    println!(
        "fleet: {instances} live_server at rest for {} s: etcd's revision moved by {moved}",
        rest.as_secs()
    );
    assert_eq!(moved, 0, "a member at rest wrote to etcd");
    drop(fleet);
}
