//! `live_server` as a process: start it, read it over HTTP, edit its files, break them,
//! use the admin routes, stop it with SIGTERM.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use eac_tests::{APP_TOML as APP, SECRET};
use support::{Auth, Launch};

/// A port already bound: refused saying so, with an exit code of its own (7), not as a
/// bare OS error. `--help` lists the code.
#[test]
fn an_address_in_use_is_refused_saying_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (config, state) = support::app_dirs();
    let (code, stderr) = Launch::new(config.path(), state.path())
        .listen(&address)
        .run_to_end();
    assert_eq!(code, Some(7), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "live_server: cannot listen on {address}: the address is in use by another process \
             (stop it, or give --listen another address)"
        )),
        "{stderr}"
    );
    drop(taken);

    let (_, help, _) = Launch::bare().arg("--help").output();
    assert!(
        help.contains("7  an address to listen on is in use"),
        "{help}"
    );
}

#[test]
fn live_server_follows_its_files_and_keeps_the_last_good_version() {
    let config = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = config.path().join("app.toml");
    std::fs::write(&file, APP).unwrap();
    let launch = Launch::new(config.path(), state.path());
    let server = launch.start();

    let response = server.request("GET", "/", Auth::None);
    assert_eq!((response.status, response.version()), (200, Some(1)));
    assert_eq!(
        response.json(),
        serde_json::json!({"message": "hello", "version": 1})
    );

    // A valid edit goes live.
    std::fs::write(&file, APP.replace("\"hello\"", "\"edited\"")).unwrap();
    let body = server.until("/", |b| b["message"] == "edited");
    assert_eq!(body["version"], 2);
    let pinned = server.get("/pinned", Auth::None);
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
    assert_eq!(server.request("GET", "/", Auth::None).version(), Some(2));

    // Admin: refresh needs the token; rollback republishes version 1 as version 3.
    assert_eq!(
        server
            .request("POST", "/_internal/eac/refresh", Auth::None)
            .status,
        401
    );
    let response = server.request("POST", "/_internal/eac/refresh?force=1", Auth::Admin);
    assert_eq!(
        (response.status, response.json()["outcome"].as_str()),
        (422, Some("rejected"))
    );
    let response = server.request("POST", "/_internal/eac/rollback?to=1", Auth::Admin);
    assert_eq!(
        (response.status, response.json()["version"].as_u64()),
        (200, Some(3))
    );
    assert_eq!(server.get("/", Auth::None)["message"], "hello");
    let history = server.get("/_internal/eac/history", Auth::None);
    assert_eq!(history["versions"][0]["version"], 3);

    // An open event stream does not keep the server from stopping on SIGTERM.
    let mut events = TcpStream::connect(server.address).unwrap();
    write!(
        events,
        "GET /_internal/eac/events HTTP/1.1\r\nhost: localhost\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    events.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    server.terminate();
    drop(events);

    // The durable history outlives the process.
    std::fs::write(&file, APP.replace("\"hello\"", "\"restarted\"")).unwrap();
    let server = launch.start();
    let body = server.get("/", Auth::None);
    assert!(!server.log().contains(SECRET), "the log shows the secret");
    assert_eq!(
        body,
        serde_json::json!({"message": "restarted", "version": 4})
    );
    server.terminate();
}
