//! Drives `live_server` as a process: start it with flags and variables, talk HTTP/1.1
//! to it over plain sockets, send it signals, and stop it.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[cfg(feature = "https")]
pub mod tls;

/// The admin token the servers are started with.
pub const TOKEN: &str = "e2e-token";
/// The read-only admin token the servers are started with.
pub const READ_TOKEN: &str = "e2e-read-token";

/// A config dir holding the standard `app.toml`, and an empty state dir.
pub fn app_dirs() -> (tempfile::TempDir, tempfile::TempDir) {
    (config_dir(), eac_tests::private_dir())
}

/// A config dir holding the standard `app.toml`.
pub fn config_dir() -> tempfile::TempDir {
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("app.toml"), eac_tests::APP_TOML).unwrap();
    config
}

/// What a fleet of `live_server`s on etcd shares: a real etcd whose `prefix` holds the
/// greeting `message`, a client of it, and a config dir holding the standard `app.toml`.
#[cfg(feature = "etcd")]
pub fn etcd_fleet_ground(
    prefix: &str,
    message: &str,
) -> (
    eac_tests::etcd::EtcdServer,
    eac_tests::etcd::BlockingClient,
    tempfile::TempDir,
) {
    let etcd = eac_tests::etcd::EtcdServer::start();
    let mut client = etcd.blocking_client(prefix);
    client.put(
        "greeting",
        serde_json::json!({ "message": message }).to_string(),
    );
    (etcd, client, config_dir())
}

/// The address of a remote document server that was started and stopped: nothing
/// answers there any more (a remote that is down).
pub fn gone_remote() -> SocketAddr {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let remote = runtime
        .block_on(eac_examples::doc_server::DocServer::start(
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let addr = remote.addr();
    runtime.block_on(remote.stop());
    addr
}

/// `live_server <args>` as a fleet tool (`put`, `fleet`, `release`), started with
/// `stdin` fed to it and its output piped; the etcd variables of this environment are
/// not passed on.
#[cfg(feature = "etcd")]
pub fn tool(args: &[&str], stdin: &str) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_live_server"))
        .args(args)
        .env_remove("EAC_ETCD_ENDPOINTS")
        .env_remove("EAC_ETCD_PREFIX")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run live_server");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child
}

/// A fleet tool run to its end: exit code, stdout, stderr.
#[cfg(feature = "etcd")]
pub fn tool_to_end(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    finish(tool(args, stdin))
}

/// A tool's exit code, stdout and stderr, once it ended.
#[cfg(feature = "etcd")]
pub fn finish(child: Child) -> (Option<i32>, String, String) {
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// How to start one `live_server`.
#[derive(Debug, Clone)]
pub struct Launch {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    removed: Vec<String>,
    cwd: Option<PathBuf>,
    shell_prefix: Option<String>,
}

impl Launch {
    /// `--config-dir config --state-dir state --listen 127.0.0.1:0`, both tokens, fast timings.
    /// An existing `state` is made owner-only, as a state dir must be.
    pub fn new(config_dir: &Path, state_dir: &Path) -> Launch {
        #[cfg(unix)]
        if state_dir.is_dir() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        Launch::bare()
            .arg("--config-dir")
            .arg(config_dir.to_str().unwrap())
            .arg("--state-dir")
            .arg(state_dir.to_str().unwrap())
    }

    /// No config or state dir given: the defaults (or whatever is added).
    pub fn bare() -> Launch {
        Launch {
            args: Vec::new(),
            envs: vec![
                ("EAC_REFRESH_ENDPOINT_TOKEN".into(), TOKEN.into()),
                ("EAC_ADMIN_READ_TOKEN".into(), READ_TOKEN.into()),
                ("EAC_WATCH_DEBOUNCE_MS".into(), "50".into()),
                ("EAC_REFRESH_COOLDOWN_MS".into(), "0".into()),
                ("EAC_SHUTDOWN_GRACE_MS".into(), "2000".into()),
                ("APP_FEATURES__SHOUT".into(), "false".into()),
            ],
            removed: Vec::new(),
            cwd: None,
            shell_prefix: None,
        }
        .listen("127.0.0.1:0")
    }

    pub fn arg(mut self, arg: &str) -> Launch {
        self.args.push(arg.to_owned());
        self
    }

    pub fn listen(mut self, address: &str) -> Launch {
        if let Some(i) = self.args.iter().position(|a| a == "--listen") {
            self.args[i + 1] = address.to_owned();
        } else {
            self.args
                .extend(["--listen".to_owned(), address.to_owned()]);
        }
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.envs.retain(|(n, _)| n != name);
        self.envs.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts it without `name` in its environment.
    pub fn env_remove(mut self, name: &str) -> Launch {
        self.envs.retain(|(n, _)| n != name);
        self.removed.push(name.to_owned());
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Launch {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Runs the server through `sh -c "<prefix>; exec live_server …"` (e.g. `ulimit -Sn 1024`).
    pub fn shell(mut self, prefix: &str) -> Launch {
        self.shell_prefix = Some(prefix.to_owned());
        self
    }

    fn command(&self) -> Command {
        let binary = env!("CARGO_BIN_EXE_live_server");
        let mut command = match &self.shell_prefix {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                    .arg(binary);
                c
            }
            None => Command::new(binary),
        };
        command.args(&self.args);
        for name in &self.removed {
            command.env_remove(name);
        }
        for (name, value) in &self.envs {
            command.env(name, value);
        }
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command
    }

    /// Starts it and waits for its "listening" line; its log goes to a file.
    pub fn start(&self) -> Server {
        self.spawn().listening()
    }

    /// Starts it without waiting: see [`Spawned`].
    pub fn spawn(&self) -> Spawned {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start live_server");
        Spawned(Server {
            child,
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: None,
            log,
        })
    }

    /// Runs it to completion (`--check`, `--print-schema`): exit code, stdout, stderr.
    pub fn output(&self) -> (Option<i32>, String, String) {
        let output = self.command().output().expect("run live_server");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs it to completion (for a start that must fail): exit code and stderr.
    pub fn run_to_end(&self) -> (Option<i32>, String) {
        let mut command = self.command();
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                return (status.code(), stderr);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("live_server did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A `live_server` started but maybe not serving yet: it can be signalled and waited
/// for; [`listening`](Spawned::listening) waits for its "listening" line.
#[derive(Debug)]
pub struct Spawned(Server);

impl Spawned {
    /// Waits for the "listening" line: the server, with its addresses.
    pub fn listening(mut self) -> Server {
        let mut line = String::new();
        BufReader::new(self.0.child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addresses: Vec<SocketAddr> = line
            .split("http://")
            .skip(1)
            .filter_map(|a| a.split_whitespace().next()?.parse().ok())
            .collect();
        assert!(
            !addresses.is_empty(),
            "no address in {line:?}; log:\n{}",
            self.0.log()
        );
        self.0.address = addresses[0];
        self.0.admin = addresses.get(1).copied();
        self.0
    }

    /// Sends it the signal `name` (`HUP`, `TERM`…).
    pub fn signal(&self, name: &str) {
        self.0.signal(name)
    }

    /// Waits up to 15 s for the process to exit; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        self.0.wait_exit()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.0.running()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.0.log()
    }
}

/// A running `live_server`, killed on drop.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    pub admin: Option<SocketAddr>,
    log: tempfile::NamedTempFile,
}

/// Which token a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    Admin,
    Read,
}

/// One HTTP response, as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn version(&self) -> Option<u64> {
        self.header("x-eac-version")?.parse().ok()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::String(self.body.clone()))
    }
}

/// Writes one request with `connection: close` on `stream`.
pub fn write_request(stream: &mut TcpStream, method: &str, path: &str, auth: Auth) {
    let auth = match auth {
        Auth::None => String::new(),
        Auth::Admin => format!("x-eac-refresh-token: {TOKEN}\r\n"),
        Auth::Read => format!("authorization: Bearer {READ_TOKEN}\r\n"),
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
}

/// A connection to `address` whose reads give up after 10 s.
pub fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `request` exactly as written (head and body) and reads the whole response.
pub fn exchange(address: SocketAddr, request: &str) -> Response {
    let mut stream = connect(address);
    stream.write_all(request.as_bytes()).unwrap();
    read_response(&mut stream).unwrap()
}

/// Reads a whole response (the server closes after it).
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("no response head in {response:?}"),
        )
    })?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

impl Server {
    /// One request to `address`.
    pub fn request_to(address: SocketAddr, method: &str, path: &str, auth: Auth) -> Response {
        let mut stream = connect(address);
        write_request(&mut stream, method, path, auth);
        read_response(&mut stream).unwrap()
    }

    /// One request to the application's listener.
    pub fn request(&self, method: &str, path: &str, auth: Auth) -> Response {
        Self::request_to(self.address, method, path, auth)
    }

    /// `GET path` as JSON.
    pub fn get(&self, path: &str, auth: Auth) -> Value {
        self.request("GET", path, auth).json()
    }

    /// Polls `GET path` until `done` holds, for at most 10 seconds.
    pub fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = self.get(path, Auth::Admin);
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never reached the expected state: {body}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`TERM`, `HUP`, `STOP`, `CONT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{name}");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits up to 15 s for the process to exit; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "live_server did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then asserts a clean exit.
    pub fn terminate(mut self) {
        self.signal("TERM");
        let code = self.wait_exit();
        assert_eq!(code, Some(0), "exit code; log:\n{}", self.log());
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
