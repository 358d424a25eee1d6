//! A fleet on one etcd: 8 `live_server` processes on one local etcd; from a `put` until
//! all 8 serve the new version (their `x-eac-version`), p50 and p99 over 100 puts; then a
//! bad put, after which no instance may have changed.
//!
//! `cargo bench -p eac-examples --features etcd --bench fleet` (needs `etcd` on PATH).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eac_tests::APP_TOML;
use eac_tests::etcd::EtcdServer;

const INSTANCES: usize = 8;
const PUTS: usize = 100;
const PREFIX: &str = "/eac/bench/";

struct Instance {
    child: Child,
    conn: BufReader<TcpStream>,
    address: SocketAddr,
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_live_server"))
            .args(["--config-dir", config.to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--etcd", etcd])
            .env("EAC_ETCD_PREFIX", PREFIX)
            .env("EAC_REFRESH_COOLDOWN_MS", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let stream = TcpStream::connect(address).unwrap();
        stream.set_nodelay(true).unwrap();
        Instance {
            child,
            conn: BufReader::new(stream),
            address,
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

fn main() {
    let etcd = EtcdServer::start();
    let mut client = etcd.blocking_client(PREFIX);
    let mut put = |value: String| client.put("greeting", value);
    put(r#"{"message": "start"}"#.into());

    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("app.toml"), APP_TOML).unwrap();
    let states: Vec<_> = (0..INSTANCES)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut fleet: Vec<Instance> = states
        .iter()
        .map(|s| Instance::start(config.path(), s.path(), &etcd.endpoint()))
        .collect();

    let mut latencies = Vec::with_capacity(PUTS);
    for i in 0..PUTS {
        let before: Vec<u64> = fleet.iter_mut().map(|s| s.get("/").0).collect();
        let started = Instant::now();
        put(format!(r#"{{"message": "put {i}"}}"#));
        let mut pending: Vec<usize> = (0..INSTANCES).collect();
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
        "fleet: {INSTANCES} live_server on one etcd, put -> all {INSTANCES} serve it, over {PUTS} puts: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= 200 ms)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
    println!(
        "fleet: bad put rejected by {INSTANCES} of {INSTANCES}; instances that changed version: {changed}"
    );
    assert_eq!(changed, 0);
    drop(fleet);
}
