//! `live_server --reload canary` as a process: an edit that validates but hurts
//! (`fail_ratio`) serves a share of the users first and is aborted by the judge with its
//! figures; a good edit (`shout`) is promoted after the window; an operator starts a
//! canary from an overlay and aborts it by hand; a remote document's change becomes the
//! canary, not the current version.

mod support;

use std::time::{Duration, Instant};

use eac_examples::doc_server::{DocServer, Document};
use support::{Auth, Launch, Server};

/// `GET /` as user `user` (the canary's key header): status, version, message.
fn get_as(server: &Server, user: &str) -> (u16, u64, String) {
    let request =
        format!("GET / HTTP/1.1\r\nhost: localhost\r\nx-user: {user}\r\nconnection: close\r\n\r\n");
    let response = support::exchange(server.address, &request);
    let message = response.json()["message"].as_str().unwrap_or("").to_owned();
    (response.status, response.version().unwrap(), message)
}

/// Requests as new users until `done`, within 20 s; how many were made.
fn drive(server: &Server, mut done: impl FnMut() -> bool) -> usize {
    let started = Instant::now();
    let mut n = 0;
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not decided after {n} requests\nlog:\n{}",
            server.log()
        );
        get_as(server, &format!("driver-{n}"));
        n += 1;
    }
    n
}

fn status(server: &Server) -> serde_json::Value {
    server.get("/_internal/eac/status", Auth::Admin)
}

#[test]
fn a_hurting_edit_is_aborted_by_its_figures_and_a_good_one_promoted() {
    let (config, state) = support::app_dirs();
    let server = Launch::new(config.path(), state.path())
        .arg("--reload")
        .arg("canary")
        .env("EAC_CANARY_SHARE", "0.5")
        .env("EAC_CANARY_WINDOW_MS", "800")
        .env("EAC_CANARY_MIN_REQUESTS", "40")
        .env("EAC_CANARY_KEY_HEADER", "x-user")
        .env_remove("APP_FEATURES__SHOUT")
        .start();
    let stable = status(&server)["version"].as_u64().unwrap();
    let app = config.path().join("app.toml");

    // Validates, but answers 500 to 60% of the requests it serves.
    let hurting = eac_tests::app_with("shout = false", "shout = false\nfail_ratio = 0.6");
    std::fs::write(&app, hurting).unwrap();
    let canary =
        server.until("/_internal/eac/status", |s| !s["canary"].is_null())["canary"]["version"]
            .as_u64()
            .unwrap();
    assert!(canary > stable);
    drive(&server, || status(&server)["canary"].is_null());
    let status_now = status(&server);
    assert_eq!(status_now["version"], stable, "nothing was published");
    let why = status_now["last_rejection"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(why.starts_with("canary: 5xx "), "{why}");
    // No request after the abort is served by it.
    for user in 0..100 {
        let (code, version, _) = get_as(&server, &format!("user-{user}"));
        assert_eq!((code, version), (200, stable));
    }

    // A good edit: promoted after the window, for everyone.
    std::fs::write(&app, eac_tests::app_with("shout = false", "shout = true")).unwrap();
    let canary =
        server.until("/_internal/eac/status", |s| !s["canary"].is_null())["canary"]["version"]
            .as_u64()
            .unwrap();
    drive(&server, || status(&server)["version"] == canary);
    for user in 0..50 {
        let (code, version, message) = get_as(&server, &format!("user-{user}"));
        assert_eq!((code, version), (200, canary));
        assert_eq!(message, message.to_uppercase());
    }
    let metrics = server
        .request("GET", "/_internal/eac/metrics", Auth::Admin)
        .body;
    assert!(
        metrics.contains("eac_canary_decisions_total{decision=\"aborted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("eac_canary_decisions_total{decision=\"promoted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("eac_canary_requests_total{role=\"canary\"}"),
        "{metrics}"
    );
    server.terminate();
}

#[test]
fn an_operator_starts_a_canary_from_an_overlay_and_decides_by_hand() {
    let (config, state) = support::app_dirs();
    let server = Launch::new(config.path(), state.path())
        .env("EAC_CANARY_SHARE", "1.0")
        .env("EAC_CANARY_WINDOW_MS", "600000")
        .start();
    let stable = status(&server)["version"].as_u64().unwrap();
    let post = |path: &str, body: &str, auth: Auth| {
        let auth = match auth {
            Auth::Admin => format!("x-eac-refresh-token: {}\r\n", support::TOKEN),
            _ => String::new(),
        };
        let request = format!(
            "POST /_internal/eac/{path} HTTP/1.1\r\nhost: localhost\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        support::exchange(server.address, &request)
    };
    // Mutating: the admin token only.
    assert_eq!(
        post("canary", r#"{"features": {"shout": true}}"#, Auth::None).status,
        401
    );
    assert_eq!(post("canary/promote", "", Auth::Admin).status, 404);
    let started = post("canary", r#"{"features": {"shout": true}}"#, Auth::Admin);
    assert_eq!(started.status, 200, "{}", started.body);
    let canary = started.json()["canary"]["version"].as_u64().unwrap();
    // Share 1.0: every request is the canary's, while the status stays stable.
    let (_, version, message) = get_as(&server, "anyone");
    assert_eq!((version, message.as_str()), (canary, "HELLO"));
    assert_eq!(status(&server)["version"], stable);
    // An invalid overlay is refused with its error; the canary goes on.
    let bad = post("canary", r#"{"features": {"fail_ratio": 7}}"#, Auth::Admin);
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(status(&server)["canary"]["version"], canary);
    let aborted = post("canary/abort", "", Auth::Admin);
    assert_eq!(
        (aborted.status, aborted.json()["outcome"].as_str()),
        (200, Some("aborted"))
    );
    assert_eq!(get_as(&server, "anyone").1, stable);
    assert_eq!(post("canary/abort", "", Auth::Admin).status, 404);
    // Started again and promoted by hand: the current version, for everyone.
    let again = post(
        "canary",
        r#"{"greeting": {"message": "by hand"}}"#,
        Auth::Admin,
    );
    let canary = again.json()["canary"]["version"].as_u64().unwrap();
    let promoted = post("canary/promote", "", Auth::Admin);
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.json()["version"], canary);
    assert_eq!(get_as(&server, "anyone").2, "by hand");
    server.terminate();
}

fn remote_doc(message: &str) -> Document {
    Document::text(
        "application/toml",
        format!("[greeting]\nmessage = \"{message}\"\n"),
    )
}

#[test]
fn a_remote_document_s_change_becomes_the_canary_not_the_current_version() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let remote = runtime
        .block_on(DocServer::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    remote.set(remote_doc("remote one"));
    let (config, state) = support::app_dirs();
    let server = Launch::new(config.path(), state.path())
        .arg("--remote")
        .arg(&remote.url("/app.toml"))
        .arg("--reload")
        .arg("canary")
        .env("EAC_REFRESH_POLL_INTERVAL_MS", "50")
        .env("EAC_CANARY_SHARE", "0.5")
        .env("EAC_CANARY_WINDOW_MS", "600000")
        .env("EAC_CANARY_KEY_HEADER", "x-user")
        .start();
    let stable = status(&server)["version"].as_u64().unwrap();
    assert_eq!(get_as(&server, "anyone").2, "remote one");

    remote.set(remote_doc("remote two"));
    let started = server.until("/_internal/eac/status", |s| !s["canary"].is_null());
    let canary = started["canary"]["version"].as_u64().unwrap();
    assert!(canary > stable);
    assert_eq!(started["version"], stable, "the change was published");
    assert!(
        started["canary"]["origin"]
            .to_string()
            .contains(&remote.url("/app.toml")),
        "{}",
        started["canary"]
    );
    // A share of the users see it, the others the current version; each answer's
    // version says which.
    let mut seen = Vec::new();
    for user in 0..40 {
        let (code, version, message) = get_as(&server, &format!("user-{user}"));
        assert_eq!(code, 200);
        match message.as_str() {
            "remote two" => assert_eq!(version, canary),
            "remote one" => assert_eq!(version, stable),
            other => panic!("served {other:?}"),
        }
        seen.push(version);
    }
    assert!(seen.contains(&stable) && seen.contains(&canary), "{seen:?}");
    // Later polls of the same document leave the canary as it is: not published, not
    // started again (its window goes on).
    let polls = remote.requests();
    let deadline = Instant::now() + Duration::from_secs(10);
    while remote.requests() < polls + 3 {
        assert!(Instant::now() < deadline, "the remote was not polled again");
        std::thread::sleep(Duration::from_millis(20));
    }
    let later = status(&server);
    assert_eq!(later["version"], stable);
    assert_eq!(later["canary"]["version"], canary);
    assert_eq!(
        later["canary"]["started_at"],
        started["canary"]["started_at"]
    );
    server.terminate();
    runtime.block_on(remote.stop());
}
