//! `live_server`'s admin surface as a process: reads open only on loopback, an admin
//! listener of its own, bounded event streams, and no token in any answer or log line.

mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use eac_tests::APP_TOML as APP;
use support::{Auth, Launch, READ_TOKEN, Server, TOKEN, write_request};

const READS: [&str; 2] = ["/_internal/eac/status", "/_internal/eac/history"];
const MUTATIONS: [&str; 3] = [
    "/_internal/eac/refresh",
    "/_internal/eac/rollback?to=1",
    "/_internal/eac/preview",
];

fn folders() -> (tempfile::TempDir, tempfile::TempDir) {
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("app.toml"), APP).unwrap();
    (config, tempfile::tempdir().unwrap())
}

fn no_token_shown(server: &Server, text: &str) {
    for token in [TOKEN, READ_TOKEN] {
        assert!(!text.contains(token), "a token shows in: {text}");
        assert!(!server.log().contains(token), "a token shows in the log");
    }
}

#[test]
fn on_loopback_reads_are_open_and_mutations_need_the_token() {
    let (config, state) = folders();
    let server = Launch::new(config.path(), state.path()).start();
    for path in READS {
        let response = server.request("GET", path, Auth::None);
        assert_eq!(response.status, 200, "{path}");
        no_token_shown(&server, &response.body);
    }
    for path in MUTATIONS {
        assert_eq!(
            server.request("POST", path, Auth::None).status,
            401,
            "{path}"
        );
        assert_eq!(
            server.request("POST", path, Auth::Read).status,
            403,
            "{path}"
        );
    }
    server.terminate();
}

/// `GET path` naming `host`, as a browser sends it for a page of that name.
fn read_for_host(address: SocketAddr, path: &str, host: &str) -> support::Response {
    support::exchange(
        address,
        &format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
    )
}

#[test]
fn on_loopback_reads_for_another_host_name_are_refused() {
    // A page whose name is rebound to 127.0.0.1 reaches the listener with its own name.
    let (config, state) = folders();
    let server = Launch::new(config.path(), state.path()).start();
    let port = server.address.port();
    for path in READS {
        let refused = read_for_host(server.address, path, "rebound.example:8080");
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(
            refused.body.contains("EAC_ADMIN_OPEN_READS=1"),
            "{}",
            refused.body
        );
        assert_eq!(refused.header("cache-control"), Some("no-store"));
        for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
            let read = read_for_host(server.address, path, &host);
            assert_eq!(read.status, 200, "{path} for {host}: {}", read.body);
        }
    }
    server.terminate();

    // Opened on purpose: every name.
    let (config, state) = folders();
    let server = Launch::new(config.path(), state.path())
        .env("EAC_ADMIN_OPEN_READS", "1")
        .start();
    for path in READS {
        let read = read_for_host(server.address, path, "rebound.example:8080");
        assert_eq!(read.status, 200, "{path}: {}", read.body);
    }
    server.terminate();
}

#[test]
fn bound_beyond_loopback_every_read_needs_a_token() {
    let (config, state) = folders();
    let server = Launch::new(config.path(), state.path())
        .listen("0.0.0.0:0")
        .start();
    // Reached through loopback all the same: the bound address decides, not the peer.
    let local = SocketAddr::from(([127, 0, 0, 1], server.address.port()));
    for path in READS {
        let refused = Server::request_to(local, "GET", path, Auth::None);
        assert_eq!(refused.status, 401, "{path}");
        assert!(
            refused.body.contains("EAC_ADMIN_READ_TOKEN"),
            "{}",
            refused.body
        );
        assert_eq!(
            Server::request_to(local, "GET", path, Auth::Read).status,
            200,
            "{path}"
        );
        assert_eq!(
            Server::request_to(local, "GET", path, Auth::Admin).status,
            200,
            "{path}"
        );
    }
    let refresh = Server::request_to(local, "POST", "/_internal/eac/refresh", Auth::Read);
    assert_eq!(refresh.status, 403);
    no_token_shown(&server, &refresh.body);
    // The application itself stays open.
    assert_eq!(
        Server::request_to(local, "GET", "/", Auth::None).status,
        200
    );
    server.terminate();
}

#[test]
fn an_admin_listener_of_its_own_takes_the_admin_routes_away_from_the_application() {
    let (config, state) = folders();
    let server = Launch::new(config.path(), state.path())
        .arg("--admin-listen")
        .arg("127.0.0.1:0")
        .start();
    let admin = server.admin.expect("the admin address is printed");
    assert_ne!(admin, server.address);
    for path in READS {
        assert_eq!(
            server.request("GET", path, Auth::Admin).status,
            404,
            "{path}"
        );
        let response = Server::request_to(admin, "GET", path, Auth::None);
        assert_eq!(response.status, 200, "{path}");
    }
    let refresh = Server::request_to(admin, "POST", "/_internal/eac/refresh?force=1", Auth::Admin);
    assert_eq!(refresh.status, 200, "{}", refresh.body);
    assert_eq!(server.request("GET", "/", Auth::None).status, 200);
    server.terminate();
}

/// Opens an event stream; returns the connection and the status it was answered with.
fn open_stream(address: SocketAddr) -> (TcpStream, u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = Vec::new();
    {
        let mut s = &mut request;
        std::io::Write::write_all(
            &mut s,
            b"GET /_internal/eac/events HTTP/1.1\r\nhost: localhost\r\n\r\n",
        )
        .unwrap();
    }
    std::io::Write::write_all(&mut stream, &request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (stream, status, head)
}

#[test]
fn at_most_64_event_streams_then_503_until_one_closes() {
    let (config, state) = folders();
    let server = Launch::new(config.path(), state.path()).start();
    let mut streams: Vec<TcpStream> = (0..64)
        .map(|i| {
            let (stream, status, _) = open_stream(server.address);
            assert_eq!(status, 200, "stream {i}");
            stream
        })
        .collect();
    let (_, status, head) = open_stream(server.address);
    assert_eq!(status, 503);
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    drop(streams.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (stream, status, _) = open_stream(server.address);
        if status == 200 {
            streams.push(stream);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed stream never freed its slot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Other admin reads still answer meanwhile.
    let mut status = TcpStream::connect(server.address).unwrap();
    status
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write_request(&mut status, "GET", "/_internal/eac/status", Auth::None);
    assert_eq!(support::read_response(&mut status).unwrap().status, 200);
    // And streams end on SIGTERM instead of holding the process up.
    server.terminate();
    for mut stream in streams {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }
}

/// A POST with a JSON body; the whole response.
fn post_json(address: SocketAddr, path: &str, body: &str) -> support::Response {
    support::exchange(
        address,
        &format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\nx-eac-refresh-token: {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn neither_the_admin_token_nor_an_unrelated_app_variable_shows_anywhere() {
    const UNRELATED: &str = "unrelated-value-9f8e7d";
    let (config, state) = folders();
    let server = Launch::new(config.path(), state.path())
        .env("APP_ADMIN_TOKEN", UNRELATED)
        .env("APP_GREETING__MESSAGE", "from env")
        .start();
    assert_eq!(server.get("/", Auth::None)["message"], "from env");
    // A preview that touches the unrelated key is rejected and never echoes it.
    let preview = post_json(
        server.address,
        "/_internal/eac/preview",
        r#"{"admin_token": "probe", "greeting": {"message": "previewed"}}"#,
    );
    std::fs::write(
        config.path().join("app.toml"),
        APP.replace("max_body_bytes = 1048576", "max_body_bytes = 2048"),
    )
    .unwrap();
    server.until("/_internal/eac/status", |s| s["version"] == 2);
    let mut seen = vec![preview.body.clone()];
    for path in READS {
        seen.push(server.request("GET", path, Auth::Admin).body);
    }
    seen.push(server.log());
    for entry in std::fs::read_dir(state.path()).unwrap() {
        seen.push(
            String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap()).into_owned(),
        );
    }
    for text in &seen {
        assert!(
            !text.contains(UNRELATED),
            "the unrelated APP_ variable shows: {text}"
        );
        assert!(
            !text.contains(TOKEN) && !text.contains(READ_TOKEN),
            "a token shows: {text}"
        );
    }
    server.terminate();
}

/// `GET /_internal/eac/metrics` passes Prometheus' own linter, `promtool check metrics`:
/// every family has help text, counters end in `_total`, units are suffixes. The server
/// reads a remote document (the per-source families), published a change and rejected
/// one (both outcomes, the histogram).
#[test]
fn the_metrics_page_passes_promtool_check_metrics() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use eac_examples::doc_server::{DocServer, Document};

    let promtool = Command::new("promtool").arg("--version").output();
    assert!(
        promtool.is_ok_and(|o| o.status.success()),
        "`promtool` is missing: install Debian's `prometheus` package (promtool): \
         `apt-get install -y --no-install-recommends prometheus`"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let remote = runtime
        .block_on(DocServer::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    remote.set(Document::text(
        "application/toml",
        "[greeting]\nmessage = \"remote\"\n",
    ));
    let (config, state) = folders();
    let server = Launch::new(config.path(), state.path())
        .arg("--remote")
        .arg(&remote.url("/app.toml"))
        .start();
    std::fs::write(
        config.path().join("app.toml"),
        APP.replace("max_body_bytes = 1048576", "max_body_bytes = 2048"),
    )
    .unwrap();
    server.until("/_internal/eac/status", |s| s["version"] == 2);
    std::fs::write(
        config.path().join("app.toml"),
        APP.replace("max_body_bytes = 1048576", "max_body_bytes = 0"),
    )
    .unwrap();
    server.until("/_internal/eac/status", |s| !s["last_rejection"].is_null());

    let page = server.request("GET", "/_internal/eac/metrics", Auth::Read);
    assert_eq!(page.status, 200, "{}", page.body);
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(page.body.as_bytes())
        .unwrap();
    let verdict = check.wait_with_output().unwrap();
    assert_eq!(
        verdict.status.code(),
        Some(0),
        "promtool check metrics:\n{}{}\nthe page:\n{}",
        String::from_utf8_lossy(&verdict.stdout),
        String::from_utf8_lossy(&verdict.stderr),
        page.body
    );
    for family in [
        "eac_reload_total",
        "eac_publish_duration_seconds",
        "eac_snapshot_version",
        "eac_source_requests_total",
    ] {
        assert!(
            page.body.contains(&format!("# HELP {family} ")),
            "`{family}` has no help text:\n{}",
            page.body
        );
    }
    server.terminate();
    runtime.block_on(remote.stop());
}
