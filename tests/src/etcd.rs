//! A real `etcd` for tests: one member on free loopback ports with a temporary data
//! directory, killed (and its directory removed) on drop; and a TCP proxy in front of it
//! that a test can cut, to take one client off the cluster while others keep writing.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to install when `etcd` is missing: tests fail saying so, never pass by skipping.
pub const INSTALL_HINT: &str = "the etcd tests need the `etcd` binary on PATH: install it with \
     `apt-get install -y etcd-server` (Debian/Ubuntu; building eac's `etcd` feature also needs \
     `protobuf-compiler`)";

/// One etcd member, stopped on drop.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    paused: bool,
}

impl EtcdServer {
    /// Starts etcd and waits until it answers `/health` (at most 20 s).
    ///
    /// Panics with [`INSTALL_HINT`] when there is no `etcd` binary.
    pub fn start() -> EtcdServer {
        // tmpfs when there is one: fsync is free there, and the tests are about eac.
        let dir = match Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm"),
            false => tempfile::tempdir(),
        }
        .expect("create etcd's data dir");
        let mut server = EtcdServer {
            child: None,
            dir,
            client_port: free_port(),
            peer_port: free_port(),
            paused: false,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.log_path()).expect("create etcd's log");
        let child = Command::new("etcd")
            .arg("--name=eac-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=eac-test={peer}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot start etcd: {e}"),
        };
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(20));
    }

    fn wait_healthy(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.healthy() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("etcd exited ({status}) at start:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("etcd not healthy within {within:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.client_port
        );
        if s.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.contains("\"health\":\"true\"")
    }

    /// `http://127.0.0.1:<port>`, its client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// A client for tests that are not async, writing under `prefix`.
    #[cfg(feature = "etcd")]
    pub fn blocking_client(&self, prefix: &str) -> BlockingClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the etcd client");
        let client = runtime
            .block_on(etcd_client::Client::connect([self.endpoint()], None))
            .expect("connect to etcd");
        BlockingClient {
            runtime,
            client,
            prefix: prefix.to_owned(),
        }
    }

    /// Its client port.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// What etcd wrote to stderr, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills etcd (SIGKILL) and waits for it to exit; its data stays.
    pub fn kill(&mut self) {
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data, after [`kill`](EtcdServer::kill).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart an etcd that was killed");
        self.spawn();
    }

    /// Kills etcd and starts a new, empty member on the same ports: a cluster replaced
    /// (or restored from an old backup), whose revisions start again from 1.
    pub fn replace_with_empty(&mut self) {
        self.kill();
        let data = self.dir.path().join("data");
        std::fs::remove_dir_all(&data).expect("remove etcd's data dir");
        self.spawn();
    }

    /// The bytes etcd has sent to gRPC clients so far (its
    /// `etcd_network_client_grpc_sent_bytes_total` metric).
    pub fn grpc_sent_bytes(&self) -> u64 {
        let mut s = TcpStream::connect(("127.0.0.1", self.client_port)).expect("connect to etcd");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        // HTTP/1.0: the body is not chunked, so every line of it is whole.
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("ask for etcd's metrics");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read etcd's metrics");
        let name = "etcd_network_client_grpc_sent_bytes_total ";
        let line = answer
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("etcd's metrics lack {name}"));
        line.trim().parse::<f64>().expect("a number of bytes") as u64
    }

    /// Pauses etcd with SIGSTOP: its sockets stay open, nothing answers.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    /// Resumes a paused etcd with SIGCONT.
    pub fn resume(&mut self) {
        if self.paused {
            self.signal("-CONT");
            self.paused = false;
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("etcd is running").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A TCP proxy to one address: [`cut`](TcpProxy::cut) drops every connection and refuses
/// new ones until [`restore`](TcpProxy::restore). Stopped on drop.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    shared: Arc<ProxyShared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct ProxyShared {
    cut: AtomicBool,
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

impl TcpProxy {
    /// Forwards a new loopback port to `127.0.0.1:target`.
    pub fn start(target: u16) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(ProxyShared::default());
        let s = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(down) = conn else { continue };
                if s.cut.load(Ordering::SeqCst) {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) else {
                    continue;
                };
                {
                    let mut open = s.open.lock().unwrap_or_else(|e| e.into_inner());
                    open.extend(down.try_clone());
                    open.extend(up.try_clone());
                }
                std::thread::spawn(move || pipe(down, u2));
                std::thread::spawn(move || pipe(up, d2));
            }
        });
        TcpProxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:<port>`, to give a client instead of the server's.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        for s in open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// An etcd client for tests that are not async: [`EtcdServer::blocking_client`].
#[cfg(feature = "etcd")]
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: etcd_client::Client,
    prefix: String,
}

#[cfg(feature = "etcd")]
impl std::fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingClient")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "etcd")]
impl BlockingClient {
    /// Puts `value` at `<prefix><key>`; returns the cluster's revision after it.
    pub fn put(&mut self, key: &str, value: impl Into<Vec<u8>>) -> i64 {
        let key = format!("{}{key}", self.prefix);
        self.runtime
            .block_on(self.client.put(key, value, None))
            .expect("put")
            .header()
            .map_or(0, |h| h.revision())
    }

    /// Every key under the prefix with its mod_revision, in key order.
    pub fn keys(&mut self) -> Vec<(String, i64)> {
        let options = etcd_client::GetOptions::new().with_prefix();
        self.runtime
            .block_on(self.client.get(self.prefix.as_str(), Some(options)))
            .expect("get the prefix")
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.mod_revision(),
                )
            })
            .collect()
    }

    /// Compacts the cluster's history up to its revision now (physically): a watch
    /// from an older revision is refused from then on. Compacting twice at one revision
    /// is an error of etcd's (`required revision has been compacted`).
    pub fn compact(&mut self) -> Result<i64, etcd_client::Error> {
        let revision = self.revision();
        self.runtime.block_on(self.client.compact(
            revision,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        ))?;
        Ok(revision)
    }

    /// The cluster's revision now.
    pub fn revision(&mut self) -> i64 {
        self.runtime
            .block_on(self.client.get(self.prefix.as_str(), None))
            .expect("get")
            .header()
            .map_or(0, |h| h.revision())
    }
}
