//! Cold start: from `live_server`'s spawn to its first answer of `GET /`, in two states:
//!
//! - **bare**: the bundled configuration, an empty state dir;
//! - **loaded**: a state dir holding 1,000 history records (`--records`) and the cache of
//!   a remote document whose server is gone, so the start reads the history and starts
//!   from the cache. With the `etcd` feature, also the cache of an etcd prefix (one
//!   section, `limits`) whose cluster is gone: `live_server --etcd` starts from it.
//!
//! Each is started `--starts` times (10); the figure is the time until a `GET /` is
//! answered, polled every 0.2 ms. After the loaded starts, one more start is asked for
//! `GET /pinned`, which must show the remote's last document and etcd's section: the
//! start did read the caches. Target (issue 33): ≤ 50 ms in both.
//!
//! `cargo bench -p eac-examples [--features etcd] --bench cold_start [-- --starts 10 --records 1000]`
//! (the `etcd` feature needs `etcd` on PATH: `apt-get install etcd-server protobuf-compiler`)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eac_examples::doc_server::{DocServer, Document};

/// `--name N` from the command line, or `default`.
fn flag(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// The port a live_server will listen on: one the system just gave out.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// `live_server` on `config` and `state`, listening on `address`, with `sources` (the
/// flags of a remote and an etcd prefix, or none) and the variables `env`.
fn spawn_with(
    config: &Path,
    state: &Path,
    address: SocketAddr,
    sources: &[String],
    env: &[(&str, &str)],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_live_server"))
        .args(["--config-dir", config.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--listen", &address.to_string()])
        .args(sources)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start live_server")
}

/// `live_server` as a start is timed: nothing but the flags.
fn spawn(config: &Path, state: &Path, address: SocketAddr, sources: &[String]) -> Child {
    spawn_with(config, state, address, sources, &[])
}

/// A live_server polling its remote every 2 ms.
fn spawn_polling(config: &Path, state: &Path, address: SocketAddr, sources: &[String]) -> Child {
    let every_2ms = [
        ("EAC_REFRESH_COOLDOWN_MS", "0"),
        ("EAC_REFRESH_POLL_INTERVAL_MS", "2"),
        ("EAC_REFRESH_POLL_JITTER_PCT", "0"),
    ];
    spawn_with(config, state, address, sources, &every_2ms)
}

/// `GET path`'s body, or nothing while nothing answers.
fn body(address: SocketAddr, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return String::new();
    };
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nconnection: close\r\n\r\n"
    );
    let mut all = String::new();
    let _ = stream.read_to_string(&mut all);
    all
}

/// One request; its status, or `None` while nothing answers.
fn request(address: SocketAddr, method: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    line.split(' ').nth(1)?.parse().ok()
}

/// The time from spawning to the first 200 on `GET /`.
fn first_answer(config: &Path, state: &Path, sources: &[String]) -> Duration {
    let address = free_port();
    let started = Instant::now();
    let mut child = spawn(config, state, address, sources);
    let took = loop {
        if request(address, "GET", "/") == Some(200) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no answer within 10 s"
        );
        assert!(child.try_wait().unwrap().is_none(), "live_server exited");
        std::thread::sleep(Duration::from_micros(200));
    };
    stop(child);
    took
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "cold start, {name}: spawn -> first answer of GET /, {} starts: median {:.1} ms, p90 {:.1} ms, max {:.1} ms (target <= 50 ms)",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() - 1]),
    );
}

fn main() {
    let starts = flag("--starts", 10) as usize;
    let records = flag("--records", 1000) as usize;
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");

    // Bare: the bundled configuration, a fresh state dir each start.
    let bare: Vec<Duration> = (0..starts)
        .map(|_| {
            let state = eac_tests::private_dir();
            first_answer(&bundled, state.path(), &[])
        })
        .collect();

    // Loaded: 1,000 publishes of a remote document through the coordinator (each a
    // history record, the last one cached), then the remote gone.
    let config = tempfile::tempdir().unwrap();
    std::fs::copy(bundled.join("app.toml"), config.path().join("app.toml")).unwrap();
    let state = eac_tests::private_dir();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let remote = runtime
        .block_on(DocServer::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let url = remote.url("/app.toml");
    let doc = |i: usize| {
        Document::text(
            "application/toml",
            format!("[greeting]\nmessage = \"remote {i}\"\n"),
        )
    };
    remote.set(doc(0));
    #[cfg_attr(not(feature = "etcd"), allow(unused_mut))]
    let mut sources = vec!["--remote".to_owned(), url.clone()];
    // With the `etcd` feature: a prefix holding one section, read and cached too.
    #[cfg(feature = "etcd")]
    let mut etcd = {
        let etcd = eac_tests::etcd::EtcdServer::start();
        etcd.blocking_client("/cold/")
            .put("limits", r#"{"max_body_bytes": 4096}"#);
        sources.extend(["--etcd".to_owned(), etcd.endpoint()]);
        sources.extend(["--etcd-prefix".to_owned(), "/cold/".to_owned()]);
        etcd
    };
    let address = free_port();
    let child = spawn_polling(config.path(), state.path(), address, &sources);
    let deadline = Instant::now() + Duration::from_secs(10);
    while request(address, "GET", "/") != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the loading server never answered"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Each document picked up by the next poll (every 2 ms here): one version each.
    for i in 1..records {
        remote.set(doc(i));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !body(address, "/").contains(&format!("\"remote {i}\"")) {
            assert!(Instant::now() < deadline, "publish {i} never came");
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    stop(child);
    runtime.block_on(remote.stop());
    #[cfg(feature = "etcd")]
    etcd.kill();
    let history = std::fs::read(state.path().join("history.eac")).unwrap_or_default();
    let cached = std::fs::read_dir(state.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("remote-"));
    assert!(cached, "no remote cache in the state dir");
    let loaded: Vec<Duration> = (0..starts)
        .map(|_| first_answer(config.path(), state.path(), &sources))
        .collect();
    // What those starts served came from the caches: the remote's last document, and
    // etcd's section.
    let address = free_port();
    let child = spawn(config.path(), state.path(), address, &sources);
    let deadline = Instant::now() + Duration::from_secs(10);
    let pinned = loop {
        let pinned = body(address, "/pinned");
        if pinned.starts_with("HTTP/1.1 200") {
            break pinned;
        }
        assert!(Instant::now() < deadline, "the last start never answered");
        std::thread::sleep(Duration::from_millis(1));
    };
    stop(child);
    let last = format!("\"remote {}\"", records.saturating_sub(1));
    assert!(pinned.contains(&last), "not the remote's cache: {pinned}");
    #[cfg(feature = "etcd")]
    assert!(
        pinned.contains("\"max_body_bytes\":4096"),
        "not etcd's cache: {pinned}"
    );
    let gone = if cfg!(feature = "etcd") {
        "the remote and etcd gone: from their caches"
    } else {
        "the remote gone: from its cache"
    };
    summary("bare (bundled config, empty state dir)", bare);
    summary(
        &format!(
            "loaded ({records} history records, {} KiB of history, {gone})",
            history.len() / 1024
        ),
        loaded,
    );
}
