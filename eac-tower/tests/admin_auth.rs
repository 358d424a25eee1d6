//! Who may call the admin, and its limits: closed reads, the read-only token, the read
//! policy decided by the bound address, bounded event streams, `Retry-After`, a router
//! nested in an application with state, and refresh through a coordinator — over a real
//! HTTP server on loopback.

mod admin_harness;

use std::time::Duration;

use admin_harness::{
    Auth, READ_TOKEN, SECRET, Server, TOKEN, app_toml, both_tokens, exact_request,
};
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

/// The read-only token set, and a short keep-alive so that the server notices a client
/// that went away at its next write.
async fn keeping_streams_alive() -> Server {
    let config = AdminConfig::new().read_token(Some(READ_TOKEN));
    Server::start(config.keep_alive(Duration::from_millis(50))).await
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

/// The admin as a service mounts it: both tokens and `EAC_ADMIN_OPEN_READS=open` from
/// the variables, read for the address bound; through the coordinator.
async fn serve(bind: &str, open: Option<&'static str>) -> Server {
    let vars = move |name: &str| match name {
        "EAC_REFRESH_ENDPOINT_TOKEN" => Some(TOKEN.to_owned()),
        "EAC_ADMIN_READ_TOKEN" => Some(READ_TOKEN.to_owned()),
        "EAC_ADMIN_OPEN_READS" => open.map(str::to_owned),
        _ => None,
    };
    Server::start_configured(bind, move |bound| {
        AdminConfig::from_vars_for(bound, vars).unwrap()
    })
    .await
}

#[tokio::test]
async fn reads_follow_the_bound_address_not_the_peer() {
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

/// Every read route, as a path under the prefix.
const EVERY_READ: [&str; 4] = ["/status", "/history", "/events", "/diff?from=1"];

#[tokio::test]
async fn on_loopback_reads_answer_only_requests_for_a_loopback_name() {
    let server = serve("127.0.0.1:0", None).await;
    let port = server.address.port();
    let read = |path: &str, host: Option<&str>, auth| {
        let target = format!("{}{path}", admin::DEFAULT_PREFIX);
        server.send_exact(exact_request("GET", &target, host, auth))
    };
    let loopback_names = [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        "127.9.8.7".to_owned(),
        "localhost".to_owned(),
        format!("LocalHost:{port}"),
        "localhost.".to_owned(),
        format!("localhost.:{port}"),
        "localhost:".to_owned(),
        format!("[::1]:{port}"),
        "[::1]".to_owned(),
        "[::ffff:127.0.0.1]".to_owned(),
    ];
    for host in &loopback_names {
        for path in EVERY_READ {
            let reply = read(path, Some(host), Auth::None).await;
            assert_eq!(reply.status, 200, "{path} for {host:?}: {}", reply.text);
        }
    }
    // Names a DNS server answers for (however they resolve), other addresses, and what
    // is not a host at all.
    let other_names = [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        "127.0.0.1.evil.example".to_owned(),
        "localhost.evil.example".to_owned(),
        "evil-localhost".to_owned(),
        format!("0.0.0.0:{port}"),
        "10.0.0.1".to_owned(),
        "[fe80::1]".to_owned(),
        "::1".to_owned(),
        "[::1".to_owned(),
        "[::1]x".to_owned(),
        "127.0.0.1:80x".to_owned(),
        "localhost:80:80".to_owned(),
        String::new(),
    ];
    for host in &other_names {
        for path in EVERY_READ {
            let reply = read(path, Some(host), Auth::None).await;
            assert_eq!(reply.status, 403, "{path} for {host:?}: {}", reply.text);
            let message = reply.json()["error"].as_str().unwrap().to_owned();
            assert!(message.contains("EAC_ADMIN_OPEN_READS=1"), "{message}");
            // A wrong token opens nothing either.
            let reply = read(path, Some(host), Auth::Bearer("wrong")).await;
            assert_eq!(reply.status, 403, "{path} for {host:?}: {}", reply.text);
        }
    }
    // Two `Host` headers name no one host.
    let mut twice = exact_request(
        "GET",
        &format!("{}/status", admin::DEFAULT_PREFIX),
        Some("localhost"),
        Auth::None,
    );
    twice
        .headers_mut()
        .append("host", http::HeaderValue::from_static("localhost"));
    let reply = server.send_exact(twice).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    for path in EVERY_READ {
        let reply = read(path, None, Auth::None).await;
        assert_eq!(reply.status, 403, "{path} without a host: {}", reply.text);
        // A token is the point: it opens reads whatever the name.
        for auth in [Auth::Bearer(READ_TOKEN), Auth::Header(TOKEN)] {
            let reply = read(path, Some("evil.example"), auth).await;
            assert_eq!(reply.status, 200, "{path} with {auth:?}: {}", reply.text);
        }
    }
    // The name of an absolute-form target (and HTTP/2's `:authority`, which arrives the
    // same way) is the request's host, whatever `Host` says (RFC 9112 §3.2.2).
    let status = format!("{}/status", admin::DEFAULT_PREFIX);
    let foreign = format!("http://evil.example{status}");
    let reply = server
        .send_exact(exact_request(
            "GET",
            &foreign,
            Some(&format!("127.0.0.1:{port}")),
            Auth::None,
        ))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let local = format!("http://localhost:{port}{status}");
    let reply = server
        .send_exact(exact_request(
            "GET",
            &local,
            Some("evil.example"),
            Auth::None,
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let mut refusals = serde_json::Map::new();
    let long = format!("{}.example", "a".repeat(100));
    for (name, host) in [
        ("another name", Some("evil.example")),
        ("a long name, cut short", Some(long.as_str())),
        ("no host", None),
    ] {
        let reply = read("/status", host, Auth::None).await;
        refusals.insert(name.to_owned(), reply.json());
    }
    insta::assert_json_snapshot!("loopback_refusals", Value::Object(refusals));
    server.stop().await;
}

#[tokio::test]
async fn reads_opened_on_purpose_answer_every_name() {
    let opened = serve("127.0.0.1:0", Some("1")).await;
    for path in EVERY_READ {
        for host in [Some("evil.example"), None] {
            let target = format!("{}{path}", admin::DEFAULT_PREFIX);
            let reply = opened
                .send_exact(exact_request("GET", &target, host, Auth::None))
                .await;
            assert_eq!(reply.status, 200, "{path} for {host:?}: {}", reply.text);
        }
    }
    opened.stop().await;
    // Closed on purpose: loopback names need a token too.
    let closed = serve("127.0.0.1:0", Some("0")).await;
    let reply = closed.send("GET", "/status", Auth::None, "").await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    closed.stop().await;
}

#[tokio::test]
async fn every_admin_answer_is_kept_by_no_cache() {
    let server = Server::start(
        both_tokens()
            .max_streams(1)
            .body_limit(64)
            .metrics(|| "# nothing yet\n".to_owned())
            .rate_limit(4, Duration::from_secs(3600)),
    )
    .await;
    let unwired = Server::start_on("127.0.0.1:0", |setup| {
        let config = both_tokens().shutdown_signal(setup.until_stopped());
        Router::new().nest(
            admin::DEFAULT_PREFIX,
            admin::router(setup.accessor.clone(), config),
        )
    })
    .await;
    let loopback = serve("127.0.0.1:0", None).await;
    let mut seen = Vec::new();
    let mut check = |what: &str, reply: admin_harness::Reply| {
        assert_eq!(
            reply
                .headers
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}: {} {:?}",
            reply.status,
            reply.headers
        );
        seen.push(format!("{what}: {}", reply.status.as_u16()));
    };
    let (read, admin) = (Auth::Header(READ_TOKEN), Auth::Header(TOKEN));
    for path in ["/status", "/history", "/diff?from=1", "/metrics"] {
        check(path, server.send("GET", path, read, "").await);
        check(path, server.send("GET", path, Auth::None, "").await);
    }
    for path in ["/diff?from=x", "/diff?from=99"] {
        check(path, server.send("GET", path, read, "").await);
    }
    let (stream, held) = server.open_stream(read).await;
    check("/events", stream);
    check("/events", server.open_stream(read).await.0);
    drop(held);
    check("/events", server.open_stream(Auth::None).await.0);
    let preview = r#"{"limits": {"max_body_bytes": 7}}"#;
    let over_the_limit = "x".repeat(65);
    for (path, body) in [
        ("/preview", preview),
        ("/preview", "[]"),
        ("/preview", over_the_limit.as_str()),
        ("/refresh", ""),
        ("/rollback?to=1", ""),
        ("/rollback?to=x", ""),
        ("/rollback?to=99", ""),
        ("/rollback?to=1", ""),
    ] {
        let route = path.split('?').next().unwrap();
        check(route, server.send("POST", path, admin, body).await);
    }
    for (method, path) in [
        ("POST", "/refresh"),
        ("POST", "/rollback?to=1"),
        ("GET", "/refresh"),
    ] {
        check(path, server.send(method, path, read, "").await);
        check(path, server.send(method, path, Auth::None, "").await);
    }
    check("/refresh", server.send("GET", "/refresh", admin, "").await);
    for path in ["/refresh", "/rollback?to=1"] {
        let route = path.split('?').next().unwrap();
        check(route, unwired.send("POST", path, admin, "").await);
    }
    let status = format!("{}/status", admin::DEFAULT_PREFIX);
    check(
        "/status",
        loopback
            .send_exact(exact_request(
                "GET",
                &status,
                Some("evil.example"),
                Auth::None,
            ))
            .await,
    );
    let mut statuses: Vec<&str> = seen.iter().map(|s| s.rsplit(' ').next().unwrap()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    // Every kind of answer was met: success, refusals, errors, limits.
    assert_eq!(
        statuses,
        [
            "200", "400", "401", "403", "404", "405", "413", "429", "501", "503"
        ],
        "{seen:#?}"
    );
    server.stop().await;
    unwired.stop().await;
    loopback.stop().await;
}

#[tokio::test]
async fn without_a_coordinator_refresh_and_rollback_say_to_pass_one() {
    let server = Server::start_on("127.0.0.1:0", |setup| {
        let config = both_tokens().shutdown_signal(setup.until_stopped());
        Router::new().nest(
            admin::DEFAULT_PREFIX,
            admin::router(setup.accessor.clone(), config),
        )
    })
    .await;
    server.write(&app_toml("2048", &format!("\"{SECRET}\"")));
    let mut answers = serde_json::Map::new();
    for path in ["/refresh?force=1", "/rollback?to=1"] {
        let reply = server.send("POST", path, Auth::Header(TOKEN), "").await;
        assert_eq!(reply.status, 501, "{path}: {}", reply.text);
        answers.insert(path.to_owned(), reply.json());
    }
    insta::assert_json_snapshot!("without_a_coordinator", Value::Object(answers));
    // Nothing was reloaded behind the coordinator's back.
    let history = server
        .send("GET", "/history", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(history.json()["current"], 1);
    assert_eq!(history.json()["versions"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn without_a_fleet_a_release_decision_says_so_and_the_read_token_may_not_ask() {
    let server = Server::start_on("127.0.0.1:0", |setup| {
        let config = both_tokens().shutdown_signal(setup.until_stopped());
        Router::new().nest(
            admin::DEFAULT_PREFIX,
            admin::router(setup.accessor.clone(), config),
        )
    })
    .await;
    for action in ["promote", "abort"] {
        let path = format!("/release/1796000000000-abcd/{action}");
        let reply = server.send("POST", &path, Auth::Header(TOKEN), "").await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert!(reply.text.contains("no fleet"), "{}", reply.text);
        let reply = server
            .send("POST", &path, Auth::Bearer(READ_TOKEN), "")
            .await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.text);
    }
    let reply = server
        .send("POST", "/release/x/hold", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 404);
    assert!(reply.text.contains("promote` or `"), "{}", reply.text);
    server.stop().await;
}

/// A server whose admin routes go through a coordinator with an hour of cooldown, and
/// that coordinator.
async fn with_an_hour_of_cooldown() -> (Server, ReloadCoordinator) {
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
    (server, reloads.unwrap())
}

#[tokio::test]
async fn rollback_goes_through_the_coordinator() {
    let (server, reloads) = with_an_hour_of_cooldown().await;
    // Version 2 by the library's direct path: the coordinator has published nothing.
    server.write(&app_toml("2048", &format!("\"{SECRET}\"")));
    reloads.accessor().reload(Origin::Refresh).unwrap();
    assert_eq!(reloads.throttled_for(), None);

    // An operator's rollback is never throttled, and starts the cooldown of a publish.
    let reply = server
        .send("POST", "/rollback?to=1", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["version"], 3);
    assert!(
        reloads.throttled_for().is_some(),
        "the rollback started the cooldown"
    );
    let reply = server
        .send("POST", "/refresh", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert_eq!(
        reloads.accessor().load().version(),
        3,
        "the rollback stands"
    );

    // Once the coordinator is shut down, a rollback publishes nothing.
    reloads.shutdown().await;
    let reply = server
        .send("POST", "/rollback?to=2", Auth::Header(TOKEN), "")
        .await;
    assert_eq!(reply.status, 504, "{}", reply.text);
    assert_eq!(reloads.accessor().load().version(), 3);
    server.stop().await;
}

#[tokio::test]
async fn streams_are_bounded_and_a_closed_one_frees_its_slot() {
    // The default bound (64).
    let server = keeping_streams_alive().await;
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
    let server = keeping_streams_alive().await;
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
    let (server, reloads) = with_an_hour_of_cooldown().await;

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

// One thread: the server's tasks log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn no_log_line_holds_a_token() {
    let logs = admin_harness::capture_logs();

    let vars = |name: &str| match name {
        "EAC_REFRESH_ENDPOINT_TOKEN" => Some(format!("{TOKEN}\n")),
        "EAC_ADMIN_READ_TOKEN" => Some(READ_TOKEN.to_owned()),
        "EAC_ADMIN_OPEN_READS" => Some("1".to_owned()),
        _ => None,
    };
    let server = Server::start_on("0.0.0.0:0", |setup| {
        let config = AdminConfig::from_vars_for(setup.bound, vars)
            .unwrap()
            .coordinator(&setup.reloads)
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

    let logs = logs.text();
    // The capture works: the audit line of the refresh and the open-reads warning are here.
    assert!(logs.contains("admin refresh"), "{logs}");
    assert!(logs.contains("EAC_ADMIN_OPEN_READS=1"), "{logs}");
    assert!(logs.contains("read_token: Some(\"[set]\")"), "{logs}");
    admin_harness::assert_no_leak(&logs);
}
