//! Who may call the admin, and its limits: closed reads, the read-only token, the read
//! policy decided by the bound address, bounded event streams, `Retry-After`, a router
//! nested in an application with state, and refresh through a coordinator — over a real
//! HTTP server on loopback.

mod admin_harness;

use std::time::Duration;

use admin_harness::{Auth, READ_TOKEN, SECRET, Server, TOKEN, app_toml};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use eac_accessor::Origin;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_tower::admin::{self, AdminConfig};
use http::StatusCode;
use serde_json::{Value, json};

const READS: [&str; 3] = ["/status", "/history", "/events"];
const MUTATIONS: [(&str, &str); 3] = [
    ("/refresh", ""),
    ("/rollback?to=1", ""),
    ("/preview", r#"{"limits": {"max_body_bytes": 7}}"#),
];

fn both_tokens() -> AdminConfig {
    AdminConfig::new()
        .token(Some(TOKEN))
        .read_token(Some(READ_TOKEN))
}

#[tokio::test]
async fn closed_reads_need_either_token_on_every_read_route() {
    let server = Server::start(both_tokens()).await;
    for path in READS {
        for auth in [Auth::None, Auth::Header("wrong"), Auth::Bearer("wrong")] {
            let reply = server.send("GET", path, auth, "").await;
            assert_eq!(reply.status, 401, "{path} with {auth:?}: {}", reply.text);
            assert_eq!(
                reply.headers["www-authenticate"],
                "Bearer realm=\"eac admin\""
            );
            let message = reply.json()["error"].as_str().unwrap().to_owned();
            for how in ["x-eac-refresh-token", "Authorization: Bearer"] {
                assert!(message.contains(how), "the 401 names {how}: {message}");
            }
        }
        for auth in [
            Auth::Header(TOKEN),
            Auth::Bearer(TOKEN),
            Auth::Header(READ_TOKEN),
            Auth::Bearer(READ_TOKEN),
        ] {
            let reply = server.send("GET", path, auth, "").await;
            assert_eq!(reply.status, 200, "{path} with {auth:?}: {}", reply.text);
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn the_read_token_is_refused_by_every_mutating_route() {
    let server = Server::start(both_tokens()).await;
    server.write(&app_toml("2048", &format!("\"{SECRET}\"")));
    for (path, body) in MUTATIONS {
        for auth in [Auth::Header(READ_TOKEN), Auth::Bearer(READ_TOKEN)] {
            let reply = server.send("POST", path, auth, body).await;
            assert_eq!(reply.status, 403, "{path} with {auth:?}: {}", reply.text);
        }
        for auth in [Auth::None, Auth::Bearer("wrong")] {
            let reply = server.send("POST", path, auth, body).await;
            assert_eq!(reply.status, 401, "{path} with {auth:?}: {}", reply.text);
        }
    }
    // Nothing ran: the edit is still unpublished.
    let status = server
        .send("GET", "/status", Auth::Header(READ_TOKEN), "")
        .await;
    assert_eq!(status.json()["version"], 1);
    // The admin token still works, by either header.
    let reply = server
        .send("POST", "/refresh", Auth::Bearer(TOKEN), "")
        .await;
    assert_eq!(
        (reply.status, reply.json()["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    server.stop().await;
}

#[tokio::test]
async fn refusals_say_what_to_send() {
    let server = Server::start(both_tokens().max_streams(1)).await;
    let without_admin = Server::start(AdminConfig::new()).await;
    let mut answers = serde_json::Map::new();
    let mut note = |name: &str, reply: admin_harness::Reply| {
        answers.insert(
            name.to_owned(),
            json!({ "status": reply.status.as_u16(), "body": reply.json() }),
        );
    };
    note(
        "read without a token",
        server.send("GET", "/status", None, "").await,
    );
    note(
        "mutation without a token",
        server.send("POST", "/refresh", None, "").await,
    );
    note(
        "mutation with the read token",
        server
            .send("POST", "/refresh", Auth::Header(READ_TOKEN), "")
            .await,
    );
    note(
        "mutation without a configured admin token",
        without_admin.send("POST", "/refresh", None, "").await,
    );
    note(
        "read without any configured token",
        without_admin.send("GET", "/status", None, "").await,
    );
    let (_, held) = server.open_stream(Auth::Header(READ_TOKEN)).await;
    assert!(held.is_some());
    note(
        "stream without a free slot",
        server.open_stream(Auth::Header(READ_TOKEN)).await.0,
    );
    drop(held);
    insta::assert_json_snapshot!("refusals", Value::Object(answers));
    server.stop().await;
    without_admin.stop().await;
}

#[tokio::test]
async fn reads_follow_the_bound_address_not_the_peer() {
    let vars = |open: Option<&'static str>| {
        move |name: &str| match name {
            "EAC_REFRESH_ENDPOINT_TOKEN" => Some(TOKEN.to_owned()),
            "EAC_ADMIN_READ_TOKEN" => Some(READ_TOKEN.to_owned()),
            "EAC_ADMIN_OPEN_READS" => open.map(str::to_owned),
            _ => None,
        }
    };
    let serve = |bind: &'static str, open: Option<&'static str>| {
        Server::start_on(bind, move |setup| {
            let config = AdminConfig::from_vars_for(setup.bound, vars(open))
                .unwrap()
                .shutdown_signal(setup.until_stopped());
            Router::new().nest(
                admin::DEFAULT_PREFIX,
                admin::router(setup.accessor.clone(), config),
            )
        })
    };

    // Bound to loopback: reads are open.
    let loopback = serve("127.0.0.1:0", None).await;
    for path in READS {
        assert_eq!(
            loopback.send("GET", path, None, "").await.status,
            200,
            "{path}"
        );
    }
    loopback.stop().await;

    // Bound to every address and reached through 127.0.0.1: the peer looks local, but
    // the listener is not, so reads are closed.
    let everywhere = serve("0.0.0.0:0", None).await;
    for path in READS {
        let without = everywhere.send("GET", path, None, "").await;
        assert_eq!(without.status, 401, "{path}");
        let with = everywhere
            .send("GET", path, Auth::Bearer(READ_TOKEN), "")
            .await;
        assert_eq!(with.status, 200, "{path}");
    }
    let refresh = everywhere
        .send("POST", "/refresh", Auth::Bearer(READ_TOKEN), "")
        .await;
    assert_eq!(refresh.status, 403);
    everywhere.stop().await;

    // The operator opens them explicitly.
    let opened = serve("0.0.0.0:0", Some("1")).await;
    for path in READS {
        assert_eq!(
            opened.send("GET", path, None, "").await.status,
            200,
            "{path}"
        );
    }
    opened.stop().await;
}

#[tokio::test]
async fn streams_are_bounded_and_a_closed_one_frees_its_slot() {
    // The default bound (64); a short keep-alive so that the server notices a client
    // that went away at its next write.
    let server = Server::start(
        AdminConfig::new()
            .read_token(Some(READ_TOKEN))
            .keep_alive(Duration::from_millis(50)),
    )
    .await;
    let mut streams = Vec::new();
    for i in 0..64 {
        let (reply, stream) = server.open_stream(Auth::Header(READ_TOKEN)).await;
        assert_eq!(reply.status, 200, "stream {i}: {}", reply.text);
        streams.push(stream.unwrap());
    }
    let (refused, _) = server.open_stream(Auth::Header(READ_TOKEN)).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.retry_after(), 5);

    drop(streams.pop());
    let accepted = async {
        loop {
            match server.open_stream(Auth::Header(READ_TOKEN)).await {
                (reply, Some(stream)) if reply.status == 200 => break stream,
                (reply, _) => {
                    assert_eq!(reply.status, 503, "{}", reply.text);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    };
    let stream = tokio::time::timeout(Duration::from_secs(10), accepted)
        .await
        .expect("a slot is freed within 10 s of a stream closing");
    drop(stream);
    drop(streams);
    server.stop().await;
}

#[tokio::test]
async fn a_quiet_stream_sends_keep_alive_comments() {
    let server = Server::start(
        AdminConfig::new()
            .read_token(Some(READ_TOKEN))
            .keep_alive(Duration::from_millis(50)),
    )
    .await;
    let (_, stream) = server.open_stream(Auth::Bearer(READ_TOKEN)).await;
    let mut stream = stream.unwrap();
    stream.read_until(": keep-alive\n\n").await;
    assert!(
        stream.seen.starts_with(": keep-alive\n\n"),
        "{}",
        stream.seen
    );
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn streams_end_cleanly_on_shutdown() {
    let server = Server::start(both_tokens()).await;
    let (_, stream) = server.open_stream(Auth::Header(TOKEN)).await;
    let mut stream = stream.unwrap();
    // The server's graceful shutdown completes while the stream is still held here,
    // because the admin ends the stream itself.
    server.stop().await;
    stream.read_to_end().await;
    assert_eq!(stream.seen, "");
}

#[tokio::test]
async fn the_rate_limit_is_shared_and_says_when_to_come_back() {
    let server = Server::start(both_tokens().rate_limit(2, Duration::from_secs(3600))).await;
    let [refresh, _, preview] = MUTATIONS;
    let reply = server
        .send("POST", refresh.0, Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = server
        .send("POST", preview.0, Auth::Header(TOKEN), preview.1)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = server
        .send("POST", "/rollback?to=1", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert!(
        (3599..=3600).contains(&reply.retry_after()),
        "{:?}",
        reply.headers
    );
    server.stop().await;
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

async fn hello(State(state): State<AppState>) -> &'static str {
    state.greeting
}

#[tokio::test]
async fn the_admin_nests_in_a_router_with_application_state() {
    let server = Server::start_on("127.0.0.1:0", |setup| {
        let config = both_tokens().shutdown_signal(setup.until_stopped());
        let app: Router<AppState> = Router::new().route("/hello", get(hello)).nest(
            admin::DEFAULT_PREFIX,
            admin::router(setup.accessor.clone(), config),
        );
        app.with_state(AppState { greeting: "hi" })
    })
    .await;
    let reply = server.send_to("GET", "/hello", Auth::None, "").await;
    assert_eq!((reply.status.as_u16(), reply.text.as_str()), (200, "hi"));
    let reply = server
        .send("GET", "/status", Auth::Header(READ_TOKEN), "")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["version"], 1);
    server.stop().await;
}

#[tokio::test]
async fn refresh_goes_through_the_coordinator() {
    let mut reloads = None;
    let server = Server::start_on("127.0.0.1:0", |setup| {
        let mut timings = ReloadConfig::default();
        timings.cooldown = Duration::from_secs(3600);
        let coordinator = ReloadCoordinator::new(setup.accessor.clone(), timings);
        let config = both_tokens()
            .coordinator(&coordinator)
            .shutdown_signal(setup.until_stopped());
        reloads = Some(coordinator);
        Router::new().nest(
            admin::DEFAULT_PREFIX,
            admin::router(setup.accessor.clone(), config),
        )
    })
    .await;
    let reloads = reloads.unwrap();

    server.write(&app_toml("2048", &format!("\"{SECRET}\"")));
    let reply = server
        .send("POST", "/refresh", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["version"], 2);
    assert_eq!(reloads.runs(), 1);
    let history = reloads.accessor().history();
    assert_eq!(history.last().unwrap().origin, Origin::Refresh);

    // Within the coordinator's cooldown: refused for now, saying for how long.
    server.write(&app_toml("4096", &format!("\"{SECRET}\"")));
    let reply = server
        .send("POST", "/refresh", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert_eq!(reply.json()["outcome"], "throttled");
    assert!(
        (3500..=3600).contains(&reply.retry_after()),
        "{:?}",
        reply.headers
    );
    assert_eq!(reloads.runs(), 1, "a throttled refresh runs nothing");

    let reply = server
        .send("POST", "/refresh?force=1", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["version"], 3);
    assert_eq!(reloads.runs(), 2);
    reloads.shutdown().await;
    server.stop().await;
}

/// Collects every log line written while it is the default subscriber.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the server's tasks log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn no_log_line_holds_a_token() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let vars = |name: &str| match name {
        "EAC_REFRESH_ENDPOINT_TOKEN" => Some(format!("{TOKEN}\n")),
        "EAC_ADMIN_READ_TOKEN" => Some(READ_TOKEN.to_owned()),
        "EAC_ADMIN_OPEN_READS" => Some("1".to_owned()),
        _ => None,
    };
    let server = Server::start_on("0.0.0.0:0", |setup| {
        let config = AdminConfig::from_vars_for(setup.bound, vars)
            .unwrap()
            .shutdown_signal(setup.until_stopped());
        tracing::info!(?config, "admin settings");
        Router::new().nest(
            admin::DEFAULT_PREFIX,
            admin::router(setup.accessor.clone(), config),
        )
    })
    .await;
    let mut statuses = Vec::new();
    for auth in [
        Auth::Header(TOKEN),
        Auth::Bearer(READ_TOKEN),
        Auth::Header("wrong"),
    ] {
        statuses.push(server.send("POST", "/refresh", auth, "").await.status);
        statuses.push(server.send("POST", "/rollback?to=1", auth, "").await.status);
        statuses.push(server.send("GET", "/status", auth, "").await.status);
    }
    server.stop().await;
    // The admin token from the variable works without its trailing newline.
    assert_eq!(statuses, [200, 200, 200, 403, 403, 200, 401, 401, 200]);

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The capture works: the audit line of the refresh and the open-reads warning are here.
    assert!(logs.contains("admin refresh"), "{logs}");
    assert!(logs.contains("EAC_ADMIN_OPEN_READS=1"), "{logs}");
    assert!(logs.contains("read_token: Some(\"[set]\")"), "{logs}");
    admin_harness::assert_no_leak(&logs);
}
