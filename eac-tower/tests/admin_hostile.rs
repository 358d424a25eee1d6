//! Hostile input to the admin over a real HTTP server on loopback: numbers past `u64`,
//! bytes that are not UTF-8, JSON nested past the parser's depth, overlays of every
//! wrong shape. Each gets a clear 4xx answer, and the server answers after it.

mod admin_harness;

use std::time::Duration;

use admin_harness::{Server, TOKEN, admin_token};

#[tokio::test]
async fn hostile_numbers_paths_and_bodies_get_a_clear_4xx_and_the_server_stays_up() {
    // No rate limit: every request below reaches its handler.
    let config = admin_token()
        .open_reads(true)
        .rate_limit(1000, Duration::ZERO);
    let server = Server::start(config).await;
    let deep = format!("{{\"limits\": {}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let cases: [(&str, &str, &str, u16, &str); 14] = [
        (
            "POST",
            "/rollback?to=18446744073709551615",
            "",
            404,
            "not in the history",
        ),
        (
            "POST",
            "/rollback?to=18446744073709551616",
            "",
            400,
            "expected `?to=N`",
        ),
        ("POST", "/rollback?to=-1", "", 400, "expected `?to=N`"),
        ("POST", "/rollback?to=%FF", "", 400, "expected `?to=N`"),
        (
            "GET",
            "/diff?from=18446744073709551615&to=0",
            "",
            404,
            "not in the history",
        ),
        ("GET", "/diff?from=%FF", "", 400, "expected `?from=A&to=B`"),
        ("POST", "/preview", &deep, 400, "the body is not JSON"),
        ("POST", "/canary", &deep, 400, "the body is not JSON"),
        ("POST", "/preview", "[1]", 400, "expected a JSON object"),
        (
            "POST",
            "/canary",
            r#"{"": {"": 1}}"#,
            422,
            "unknown section",
        ),
        (
            "POST",
            "/canary",
            r#"{"limits": {"max_body_bytes": 1e308}}"#,
            422,
            "expected a value <=",
        ),
        (
            "POST",
            "/canary",
            r#"{"limits": {"max_body_bytes": 18446744073709551616}}"#,
            422,
            "expected a value <=",
        ),
        (
            "POST",
            "/canary",
            r#"{"limits.max_body_bytes": 1}"#,
            422,
            "a key with a dot is not a path",
        ),
        ("POST", "/release/x/%FF", "", 400, "Invalid UTF-8"),
    ];
    for (method, path, body, expected, says) in cases {
        let reply = server.send(method, path, Some(TOKEN), body).await;
        assert_eq!(
            reply.status.as_u16(),
            expected,
            "{method} {path}: {}",
            reply.text
        );
        assert!(reply.text.contains(says), "{method} {path}: {}", reply.text);
    }
    let (status, body) = server.json("GET", "/status", None, "").await;
    assert_eq!(
        (status, &body["version"]),
        (200, &serde_json::json!(1)),
        "{body}"
    );
    server.stop().await;
}
