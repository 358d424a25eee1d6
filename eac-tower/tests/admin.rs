//! The admin routes end to end, over a real HTTP server on loopback.

mod admin_harness;

use std::time::Duration;

use admin_harness::{Auth, SECRET, Server, TOKEN, admin_token, app_toml, listed_versions, stable};
use axum::Router;
use eac_accessor::Origin;
use eac_tower::admin::{self, AdminConfig};

#[tokio::test]
async fn without_tokens_everything_is_closed() {
    let server = Server::start(AdminConfig::new()).await;
    // No token can open a route when the server has none: 403, never 401.
    for path in ["/status", "/history", "/events"] {
        let (status, body) = server.json("GET", path, Some(TOKEN), "").await;
        assert_eq!(
            status, 403,
            "{path} must be closed without a configured token"
        );
        let message = body["error"].as_str().unwrap();
        assert!(message.starts_with("admin reads are off"), "{message}");
    }
    for path in ["/refresh", "/rollback?to=1", "/preview"] {
        let (status, body) = server.json("POST", path, Some(TOKEN), "{}").await;
        assert_eq!(status, 403, "{path} must be off without a configured token");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.starts_with("mutating admin routes are off"),
            "{message}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn open_reads_answer_without_a_token_and_mutations_stay_off() {
    let server = Server::start(AdminConfig::new().open_reads(true)).await;
    let (status, body) = server.json("GET", "/status", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 1);
    assert_eq!(body["outcome"], "published");
    let (status, body) = server.json("GET", "/history", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(body["versions"][0]["version"], 1);
    let (reply, stream) = server.open_stream(Auth::None).await;
    assert_eq!(reply.status, 200);
    drop(stream);
    for path in ["/refresh", "/rollback?to=1", "/preview"] {
        let (status, _) = server.json("POST", path, None, "{}").await;
        assert_eq!(
            status, 403,
            "{path} is off (no admin token is set) even with open reads"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn refresh_rollback_and_status_with_the_token() {
    let server = Server::start(admin_token()).await;
    let (status, _) = server.json("POST", "/refresh", None, "").await;
    assert_eq!(status, 401);
    let (status, _) = server.json("POST", "/refresh", Some("wrong"), "").await;
    assert_eq!(status, 401);

    server.write(&app_toml("2048", &format!("\"{SECRET}\"")));
    let (status, body) = server.json("POST", "/refresh", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["outcome"].as_str(), body["version"].as_u64()),
        (Some("published"), Some(2))
    );
    assert!(body["duration_ms"].as_f64().is_some());

    // A bad edit: rejected with every error, the secret's wrong value never shown.
    server.write(&app_toml("0", &format!("[\"{SECRET}\"]")));
    let (status, body) = server.json("POST", "/refresh", Some(TOKEN), "").await;
    assert_eq!(status, 422);
    assert_eq!(body["outcome"], "rejected");
    assert_eq!(body["version"], 2);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    let (_, status_json) = server.json("GET", "/status", Some(TOKEN), "").await;
    assert_eq!(status_json["outcome"], "rejected");
    insta::assert_json_snapshot!(
        "status_after_rejection",
        stable(status_json, server.dir.path())
    );

    let (status, body) = server.json("POST", "/rollback?to=1", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 3);
    assert_eq!(body["from"], 1);
    let (status, _) = server
        .json("POST", "/rollback?to=99", Some(TOKEN), "")
        .await;
    assert_eq!(status, 404);
    let (status, _) = server.json("POST", "/rollback?to=x", Some(TOKEN), "").await;
    assert_eq!(status, 400);
    let (_, history) = server.json("GET", "/history", Some(TOKEN), "").await;
    let versions = listed_versions(&history);
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!(history["versions"][0]["origin"]["kind"], "rollback");
    server.stop().await;
}

#[tokio::test]
async fn preview_answers_the_classified_diff_and_publishes_nothing() {
    let server = Server::start(admin_token()).await;
    let overlay =
        r#"{"limits": {"max_body_bytes": 4096}, "upstream": {"api_key": "an0ther-s3cr3t"}}"#;
    let (status, body) = server.json("POST", "/preview", Some(TOKEN), overlay).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("an0ther-s3cr3t"));
    assert_eq!(body["would_publish"], true);
    insta::assert_json_snapshot!("preview", stable(body, server.dir.path()));
    let (_, status_json) = server.json("GET", "/status", Some(TOKEN), "").await;
    assert_eq!(status_json["version"], 1, "a preview publishes nothing");

    let (status, body) = server
        .json("POST", "/preview", Some(TOKEN), "not json")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("the body is not JSON (at line 1 column 2)"))
    );
    server.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_bursts_get_429() {
    let config = admin_token().body_limit(256);
    let server = Server::start(config.rate_limit(3, Duration::from_secs(3600))).await;
    let big = format!(r#"{{"limits": {{"pad": "{}"}}}}"#, "x".repeat(1024));
    let (status, _) = server.json("POST", "/preview", Some(TOKEN), &big).await;
    assert_eq!(status, 413);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(server.json("POST", "/refresh", Some(TOKEN), "").await.0);
    }
    // The oversized body was refused before the rate limit counted it.
    assert_eq!(statuses, [200, 200, 200, 429]);
    server.stop().await;
}

#[tokio::test]
async fn the_event_stream_reports_a_refresh() {
    let server = Server::start(admin_token()).await;
    let (reply, stream) = server.open_stream(Auth::Header(TOKEN)).await;
    assert_eq!(reply.status, 200);
    let mut stream = stream.unwrap();

    server.write(&app_toml("4096", &format!("\"{SECRET}\"")));
    let (status, _) = server.json("POST", "/refresh", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    stream.read_until("\n\n").await;
    assert!(
        stream.seen.starts_with("event: published\n"),
        "{}",
        stream.seen
    );
    assert!(stream.seen.contains(r#""version":2"#), "{}", stream.seen);
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn status_keeps_the_served_versions_origin_after_a_rejected_reload() {
    let mut kept = None;
    let server = Server::start_on("127.0.0.1:0", |setup| {
        kept = Some(setup.accessor.clone());
        let config = admin_token();
        Router::new().nest(
            admin::DEFAULT_PREFIX,
            admin::router(setup.accessor.clone(), config),
        )
    })
    .await;
    let accessor = kept.unwrap();
    // A poll publishes version 2…
    let url = "http://config.internal/app.toml";
    server.write(&app_toml("2048", &format!("\"{SECRET}\"")));
    let published = accessor.reload(Origin::Poll { url: url.into() }).unwrap();
    assert_eq!(published.version(), 2);
    // …then a bad edit of the file is rejected, and sits there.
    server.write(&app_toml("0", &format!("\"{SECRET}\"")));
    let path = server.dir.path().join("app.toml");
    accessor
        .reload(Origin::FileChange { path: path.clone() })
        .unwrap_err();

    let status = accessor.status();
    assert_eq!(status.version, 2);
    assert_eq!(status.origin, Origin::Poll { url: url.into() });
    assert_eq!(
        status.last_reload.as_ref().map(|r| (&r.origin, r.outcome)),
        Some((&Origin::FileChange { path }, "rejected"))
    );
    assert!(
        !status.differs_from_sources,
        "a rejected edit is no pending change"
    );

    let (code, json) = server.json("GET", "/status", Some(TOKEN), "").await;
    assert_eq!(code, 200, "{json}");
    // The served version: published by the poll, at its own time.
    assert_eq!(json["version"], 2);
    assert_eq!(json["version_origin"]["kind"], "poll", "{json}");
    assert_eq!(json["version_origin"]["url"], url);
    let published_at = published
        .snapshot()
        .published_at()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(json["published_at"].as_f64(), Some(published_at));
    // The last attempt: the file change, rejected.
    assert_eq!(json["origin"]["kind"], "file_change", "{json}");
    assert_eq!(json["outcome"], "rejected");
    assert_eq!(json["differs_from_sources"], false);
    server.stop().await;
}
