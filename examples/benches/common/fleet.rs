//! What the fleet benchmarks share: `live_server` processes on one etcd prefix, read
//! over a kept-alive connection each, and the figures' helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The prefix the fleet reads.
pub(crate) const PREFIX: &str = "/eac/bench/";

pub(crate) struct Instance {
    child: Child,
    conn: BufReader<TcpStream>,
    pub(crate) address: SocketAddr,
    /// The folder of its log: kept out of the bench's output (a line per publish), shown
    /// if it fails. A folder of its own: a member watches its config folder's parent
    /// (for the folder being replaced), and 32 logs written beside a config folder in
    /// `/tmp` woke each of 32 members' watchers on every log line of every member.
    _log: tempfile::TempDir,
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
    pub(crate) fn start(config: &std::path::Path, state: &std::path::Path, etcd: &str) -> Instance {
        let log = tempfile::tempdir().expect("a log folder");
        let log_path = log.path().join("live_server.log");
        let log_file = std::fs::File::create(&log_path).expect("the log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_live_server"))
            .args(["--config-dir", config.to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--etcd", etcd])
            .env("EAC_ETCD_PREFIX", PREFIX)
            .env("EAC_REFRESH_COOLDOWN_MS", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start live_server");
        let address = listening_address(&mut child, &log_path);
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
    pub(crate) fn get(&mut self, path: &str) -> (u64, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.address);
        self.conn.get_mut().write_all(request.as_bytes()).unwrap();
        answer(&mut self.conn)
    }
}

/// Reads one answer off a kept-alive connection: its `x-eac-version` and its body.
pub(crate) fn answer(conn: &mut BufReader<TcpStream>) -> (u64, String) {
    let (_, version, body) = read_answer(conn).unwrap();
    (version, body)
}

/// Reads one answer off a kept-alive connection: its status, its `x-eac-version` (0
/// without one) and its body; an error when the connection fails or closes first.
pub(crate) fn read_answer(conn: &mut BufReader<TcpStream>) -> std::io::Result<(u16, u64, String)> {
    let mut status_line = String::new();
    if conn.read_line(&mut status_line)? == 0 {
        return Err(std::io::Error::other("the connection closed"));
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut version, mut length) = (0, 0);
    loop {
        let mut line = String::new();
        conn.read_line(&mut line)?;
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
    conn.read_exact(&mut body)?;
    Ok((status, version, String::from_utf8_lossy(&body).into_owned()))
}

/// The address of a `live_server` just started with a piped stdout, from its first line
/// ("listening on http://…"); panics showing its log when the line has none.
pub(crate) fn listening_address(child: &mut Child, log: &std::path::Path) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("a piped stdout"))
        .read_line(&mut line)
        .unwrap();
    line.split("http://")
        .nth(1)
        .and_then(|a| a.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("no address in {line:?}; its log:\n{log}")
        })
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `--name N` from the command line, or `default`.
pub(crate) fn flag(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
