//! `live_server` as a process: start it, read it over HTTP, edit its files, break them,
//! use the admin routes, stop it with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eac_tests::{APP_TOML as APP, SECRET};
use serde_json::Value;

const TOKEN: &str = "e2e-token";

struct Server {
    child: Child,
    address: SocketAddr,
}

impl Server {
    fn start(config_dir: &Path, state_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_live_server"))
            .arg("--config-dir")
            .arg(config_dir)
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("EAC_REFRESH_ENDPOINT_TOKEN", TOKEN)
            .env("EAC_WATCH_DEBOUNCE_MS", "50")
            .env("EAC_REFRESH_COOLDOWN_MS", "0")
            .env("EAC_SHUTDOWN_GRACE_MS", "200")
            .env("APP_FEATURES__SHOUT", "false")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start live_server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Server { child, address }
    }

    /// One HTTP/1.1 request; returns status, the `x-eac-version` header and the body.
    fn request(&self, method: &str, path: &str, token: bool) -> (u16, Option<u64>, String) {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let auth = if token {
            format!("x-eac-refresh-token: {TOKEN}\r\n")
        } else {
            String::new()
        };
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: test\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let version = head
            .lines()
            .find_map(|l| l.strip_prefix("x-eac-version: "))
            .and_then(|v| v.trim().parse().ok());
        assert!(!response.contains(SECRET), "{path} leaked the secret");
        (status, version, body.to_owned())
    }

    fn json(&self, method: &str, path: &str, token: bool) -> (u16, Value) {
        let (status, _, body) = self.request(method, path, token);
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    /// Polls `GET path` until `done` holds, for at most 5 seconds.
    fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (_, body) = self.json("GET", path, false);
            if done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never reached the expected state: {body}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "live_server exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "live_server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn live_server_follows_its_files_and_keeps_the_last_good_version() {
    let config = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = config.path().join("app.toml");
    std::fs::write(&file, APP).unwrap();
    let server = Server::start(config.path(), state.path());

    let (status, version, body) = server.request("GET", "/", false);
    assert_eq!((status, version), (200, Some(1)));
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, serde_json::json!({"message": "hello", "version": 1}));

    // A valid edit goes live.
    std::fs::write(&file, APP.replace("\"hello\"", "\"edited\"")).unwrap();
    let body = server.until("/", |b| b["message"] == "edited");
    assert_eq!(body["version"], 2);
    let (_, pinned) = server.json("GET", "/pinned", false);
    assert_eq!(
        (
            pinned["version"].as_u64(),
            pinned["max_body_bytes"].as_u64()
        ),
        (Some(2), Some(1_048_576))
    );

    // A broken edit is rejected; the server keeps serving version 2 and says why.
    std::fs::write(
        &file,
        APP.replace("max_body_bytes = 1048576", "max_body_bytes = \"lots\""),
    )
    .unwrap();
    let status = server.until("/_internal/eac/status", |s| s["outcome"] == "rejected");
    assert_eq!(status["version"], 2);
    let error = &status["errors"][0];
    assert_eq!(error["key"], "limits.max_body_bytes");
    assert!(
        error["source"].as_str().unwrap().contains("app.toml"),
        "{error}"
    );
    let (_, version, _) = server.request("GET", "/", false);
    assert_eq!(version, Some(2));

    // Admin: refresh needs the token; rollback republishes version 1 as version 3.
    assert_eq!(
        server.request("POST", "/_internal/eac/refresh", false).0,
        401
    );
    let (status, body) = server.json("POST", "/_internal/eac/refresh?force=1", true);
    assert_eq!((status, body["outcome"].as_str()), (422, Some("rejected")));
    let (status, body) = server.json("POST", "/_internal/eac/rollback?to=1", true);
    assert_eq!((status, body["version"].as_u64()), (200, Some(3)));
    let (_, body) = server.json("GET", "/", false);
    assert_eq!(body["message"], "hello");
    let (_, history) = server.json("GET", "/_internal/eac/history", false);
    assert_eq!(history["versions"][0]["version"], 3);

    // An open event stream does not keep the server from stopping on SIGTERM.
    let mut events = TcpStream::connect(server.address).unwrap();
    write!(
        events,
        "GET /_internal/eac/events HTTP/1.1\r\nhost: test\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    events.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    server.terminate();
    drop(events);

    // The durable history outlives the process.
    std::fs::write(&file, APP.replace("\"hello\"", "\"restarted\"")).unwrap();
    let server = Server::start(config.path(), state.path());
    let (_, body) = server.json("GET", "/", false);
    assert_eq!(
        body,
        serde_json::json!({"message": "restarted", "version": 4})
    );
    server.terminate();
}
