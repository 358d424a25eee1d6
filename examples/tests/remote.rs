//! `live_server --remote` as a process, against a [`DocServer`] on loopback: the remote
//! document merges between the files and the env overlay, a change at the server goes
//! live, and a restart while the server is down starts at once from the cache; with
//! the `https` feature, an `https://` remote whose private CA is given by `--remote-ca`.

mod support;

use std::time::{Duration, Instant};

use eac_examples::doc_server::{DocServer, Document};
use eac_tests::ConfigDir;
use support::{Auth, Launch};

fn remote_doc(message: &str) -> Document {
    // `shout = true` here loses to the harness's APP_FEATURES__SHOUT=false: env wins.
    Document::text(
        "application/toml",
        format!("[greeting]\nmessage = \"{message}\"\n[features]\nshout = true\n"),
    )
}

fn metrics(server: &support::Server) -> String {
    server
        .request("GET", "/_internal/eac/metrics", Auth::Admin)
        .body
}

#[test]
fn live_server_follows_a_remote_document_and_starts_from_its_cache() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let remote = runtime
        .block_on(DocServer::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    remote.set(remote_doc("remote one"));
    let shown_url = remote.url("/app.toml");
    let url = format!("http://ops:hunter2@{}/app.toml", remote.addr());
    let config = ConfigDir::with_app();
    let state = tempfile::tempdir().unwrap();
    let launch = Launch::new(config.path(), state.path())
        .arg("--remote")
        .arg(&url)
        .env("EAC_REMOTE_TOKEN", "tok-s3cret")
        .env("EAC_REFRESH_POLL_INTERVAL_MS", "50");

    let server = launch.start();
    let body = server.get("/", Auth::None);
    assert_eq!(
        body["message"], "remote one",
        "the remote wins over the files"
    );
    assert_eq!(body["version"], 1);
    assert_eq!(
        remote.seen()[0].authorization.as_deref(),
        Some("Bearer tok-s3cret")
    );

    // A change at the server goes live; unchanged polls are ETag hits.
    remote.set(remote_doc("remote two"));
    let body = server.until("/", |b| b["message"] == "remote two");
    assert_eq!(body["version"], 2);
    let status = server.until("/_internal/eac/status", |s| {
        s["sources"][0]["not_modified"].as_u64() >= Some(2)
    });
    let source = &status["sources"][0];
    assert_eq!(source["name"], shown_url.as_str());
    assert_eq!(source["kind"], "http");
    assert_eq!(
        (&source["up"], &source["serving_cache"]),
        (&true.into(), &false.into())
    );
    assert_eq!(source["modified"], 2);
    let history = server
        .get("/_internal/eac/history", Auth::Admin)
        .to_string();
    // Version 2 came from the poll, named by the URL without credentials.
    assert!(
        history.contains(&format!(r#""kind":"poll","url":"{shown_url}""#)),
        "{history}"
    );
    let text = metrics(&server);
    assert!(
        text.contains(&format!("eac_source_up{{source=\"{shown_url}\"}} 1")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "eac_source_requests_total{{source=\"{shown_url}\",result=\"not_modified\"}}"
    )));
    assert!(text.contains("eac_source_last_success_timestamp_seconds{"));
    // The status's counts and the metrics are the same numbers (read between two
    // readings of the metrics while polls go on), and the last result and the HTTP status
    // it shows describe the same fetch.
    let count = |text: &str, result: &str| -> u64 {
        let line =
            format!("eac_source_requests_total{{source=\"{shown_url}\",result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    let before = metrics(&server);
    let now = server.get("/_internal/eac/status", Auth::Admin);
    let after = metrics(&server);
    let source = &now["sources"][0];
    for (field, result) in [
        ("modified", "modified"),
        ("not_modified", "not_modified"),
        ("errors", "error"),
    ] {
        let shown = source[field].as_u64().unwrap();
        assert!(
            count(&before, result) <= shown && shown <= count(&after, result),
            "{field}: status {shown}, metrics {} then {}",
            count(&before, result),
            count(&after, result)
        );
    }
    let http_status = match source["last_result"].as_str() {
        Some("not_modified") => 304,
        Some("modified") => 200,
        other => panic!("last result {other:?}: {source}"),
    };
    assert_eq!(source["details"]["http_status"], http_status, "{source}");
    let mut everything = vec![status.to_string(), history, text];
    server.terminate();
    runtime.block_on(remote.stop());

    // The remote is down: a restart serves the cached document at once, and says so.
    let started = Instant::now();
    let server = launch.start();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.get("/", Auth::None)["message"], "remote two");
    let status = server.get("/_internal/eac/status", Auth::Admin);
    let source = &status["sources"][0];
    assert_eq!(
        (&source["up"], &source["serving_cache"]),
        (&false.into(), &true.into())
    );
    assert!(
        source["last_error"].as_str().unwrap().contains(&shown_url),
        "{source}"
    );
    let text = metrics(&server);
    assert!(
        text.contains(&format!(
            "eac_source_serving_cache{{source=\"{shown_url}\"}} 1"
        )),
        "{text}"
    );
    everything.extend([status.to_string(), text, server.log()]);
    server.terminate();

    for file in std::fs::read_dir(state.path()).unwrap() {
        let path = file.unwrap().path();
        everything
            .push(String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned());
    }
    for text in &everything {
        for secret in ["hunter2", "ops:", "tok-s3cret"] {
            assert!(!text.contains(secret), "`{secret}` shown in:\n{text}");
        }
    }
}

#[test]
fn live_server_without_its_remote_or_a_cache_refuses_to_start_naming_the_url() {
    let addr = support::gone_remote();
    let config = ConfigDir::with_app();
    let state = tempfile::tempdir().unwrap();
    let (code, stderr) = Launch::new(config.path(), state.path())
        .arg("--remote")
        .arg(&format!("http://ops:hunter2@{addr}/app.toml"))
        .run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("http://{addr}/app.toml")),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// One GET to `addr` with optional `If-None-Match`: status, ETag, body.
fn get_with(addr: &str, path: &str, if_none_match: Option<&str>) -> (u16, Option<String>, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let condition = if_none_match
        .map(|e| format!("If-None-Match: {e}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{condition}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: ").map(str::to_owned));
    (status, etag, body.to_owned())
}

#[test]
fn the_doc_server_example_serves_a_file_with_etags() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote.toml");
    std::fs::write(&file, "[greeting]\nmessage = \"one\"\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_doc_server"))
        .args(["--listen", "127.0.0.1:0", "--file"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.split_whitespace().last().unwrap().to_owned();
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());

    let (status, etag, body) = get_with(addr, path, None);
    assert_eq!(
        (status, body.as_str()),
        (200, "[greeting]\nmessage = \"one\"\n")
    );
    let etag = etag.expect("an ETag");
    assert_eq!(get_with(addr, path, Some(&etag)).0, 304);
    // The file is read on each request: an edit is a new document with a new ETag.
    std::fs::write(&file, "[greeting]\nmessage = \"two\"\n").unwrap();
    let (status, new_etag, body) = get_with(addr, path, Some(&etag));
    assert_eq!(status, 200);
    assert!(body.contains("two"));
    assert_ne!(new_etag, Some(etag));
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(feature = "https")]
#[test]
fn live_server_trusts_the_private_ca_of_an_https_remote() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ca = support::tls::PrivateCa::new("eac test CA");
    let remote = runtime
        .block_on(DocServer::start_tls(
            "127.0.0.1:0".parse().unwrap(),
            ca.server.clone(),
        ))
        .unwrap();
    remote.set(remote_doc("over tls"));
    let url = remote.url("/app.toml");
    let config = ConfigDir::with_app();
    let state = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let ca_file = ca.write(files.path());
    let bad_file = files.path().join("bad.pem");
    std::fs::write(&bad_file, "not a certificate\n").unwrap();

    let (_, help, _) = Launch::bare().arg("--help").output();
    assert!(
        help.contains("--remote-ca <FILE>") && help.contains("EAC_REMOTE_CA"),
        "{help}"
    );

    // Without the CA, the server's certificate is refused, naming the URL.
    let launch = Launch::new(config.path(), state.path())
        .arg("--remote")
        .arg(&url)
        .env("EAC_REFRESH_POLL_INTERVAL_MS", "50");
    let (code, stderr) = launch.run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&url) && stderr.contains("certificate is not trusted"),
        "{stderr}"
    );
    // A file that holds no certificate is refused, naming it (here from the variable).
    let (code, stderr) = launch
        .clone()
        .env("EAC_REMOTE_CA", bad_file.to_str().unwrap())
        .run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--remote-ca: file `{}`", bad_file.display())),
        "{stderr}"
    );
    assert_eq!(remote.requests(), 0);

    // With it, the document is served and polled, over one connection.
    let server = launch
        .clone()
        .arg("--remote-ca")
        .arg(ca_file.to_str().unwrap())
        .start();
    assert_eq!(server.get("/", Auth::None)["message"], "over tls");
    remote.set(remote_doc("tls two"));
    server.until("/", |b| b["message"] == "tls two");
    let status = server.until("/_internal/eac/status", |s| {
        s["sources"][0]["not_modified"].as_u64() >= Some(2)
    });
    assert_eq!(status["sources"][0]["name"], url.as_str());
    assert_eq!(remote.connections(), 1);
    server.terminate();
    runtime.block_on(remote.stop());
}

#[cfg(not(feature = "https"))]
#[test]
fn without_the_https_feature_an_https_remote_is_refused_naming_the_feature_as_help_does() {
    let config = ConfigDir::with_app();
    let state = tempfile::tempdir().unwrap();
    let (code, stderr) = Launch::new(config.path(), state.path())
        .arg("--remote")
        .arg("https://config.example/app.toml")
        .run_to_end();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the `https` feature of eac-examples")
            && stderr.contains("--features https --bin live_server"),
        "{stderr}"
    );
    // `--help` names it the same way.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_live_server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("`https` feature of eac-examples"), "{help}");
}
