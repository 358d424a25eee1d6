//! The dashboard's routes on a real admin server: its files load without a token under
//! the CSP, at the prefix with and without a trailing slash; its data (`GET diff`) needs
//! the read policy and redacts secrets. The page itself runs in a real browser in
//! `examples/tests/dashboard.rs`.

mod admin_harness;

use admin_harness::{Auth, READ_TOKEN, SECRET, Server, TOKEN, app_toml};
use eac_accessor::Origin;
use eac_tower::admin::{self, AdminConfig};

async fn server() -> (Server, eac_accessor::EaCAccessor) {
    let mut accessor = None;
    let server = Server::start_on("0.0.0.0:0", |setup| {
        accessor = Some(setup.accessor.clone());
        let config = AdminConfig::new()
            .token(Some(TOKEN))
            .read_token(Some(READ_TOKEN))
            .shutdown_signal(setup.until_stopped());
        admin::nested(admin::DEFAULT_PREFIX, setup.accessor.clone(), config)
    })
    .await;
    (server, accessor.unwrap())
}

#[tokio::test]
async fn the_page_and_its_files_load_without_a_token_under_the_csp() {
    let (server, _accessor) = server().await;
    for path in ["/_internal/eac", "/_internal/eac/"] {
        let page = server.send_to("GET", path, Auth::None, "").await;
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        assert_eq!(
            page.headers["content-security-policy"],
            "default-src 'self'"
        );
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        // Links are absolute under the prefix, so both paths load the same files.
        assert!(
            page.text
                .contains(r#"src="/_internal/eac/dashboard/app.js""#),
            "{}",
            page.text
        );
        assert!(!page.text.contains("{{base}}"));
    }
    for (file, kind) in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let reply = server
            .send("GET", &format!("/dashboard/{file}"), Auth::None, "")
            .await;
        assert_eq!(reply.status, 200, "{file}");
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{file}: {:?}",
            reply.headers
        );
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
    // The script reads with the token header and streams with fetch, not EventSource.
    let script = server
        .send("GET", "/dashboard/app.js", Auth::None, "")
        .await
        .text;
    assert!(script.contains("x-eac-refresh-token") && script.contains("sessionStorage"));
    assert!(!script.contains("new EventSource"));
    assert!(
        !script.contains("localStorage"),
        "the token stays in the tab"
    );
    server.stop().await;
}

#[tokio::test]
async fn diff_between_kept_versions_is_a_read_route_and_redacts_secrets() {
    let (server, accessor) = server().await;
    server.write(&app_toml("2048", "\"another-s3cret\""));
    accessor.reload(Origin::Refresh).unwrap();

    let refused = server
        .send("GET", "/diff?from=1&to=2", Auth::None, "")
        .await;
    assert_eq!(refused.status, 401, "{}", refused.text);

    let diff = server
        .send("GET", "/diff?from=1&to=2", Auth::Bearer(READ_TOKEN), "")
        .await;
    assert_eq!(diff.status, 200, "{}", diff.text);
    assert!(!diff.text.contains("another-s3cret") && !diff.text.contains(SECRET));
    let diff = diff.json();
    assert_eq!(
        (diff["from"].as_u64(), diff["to"].as_u64()),
        (Some(1), Some(2))
    );
    let keys: Vec<&str> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["limits.max_body_bytes", "upstream.api_key"]);
    let secret = &diff["changes"][1];
    assert_eq!(
        (secret["old"].as_str(), secret["new"].as_str()),
        (Some("[redacted]"), Some("[redacted]"))
    );
    assert!(diff["changes"][0]["class"].is_string());

    // `to` defaults to the running version.
    let to_current = server
        .send("GET", "/diff?from=2", Auth::Header(READ_TOKEN), "")
        .await
        .json();
    assert_eq!(to_current["to"], 2);
    assert_eq!(to_current["changes"].as_array().unwrap().len(), 0);

    let unknown = server
        .send("GET", "/diff?from=1&to=9", Auth::Header(READ_TOKEN), "")
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert!(unknown.text.contains("version 9"), "{}", unknown.text);
    let malformed = server
        .send("GET", "/diff?from=one", Auth::Header(READ_TOKEN), "")
        .await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    server.stop().await;
}
