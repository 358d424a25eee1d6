//! A service written the way a newcomer writes one from the README: the prelude only,
//! `derive(Debug)` on a section with a secret, a `Router<AppState>` with the admin
//! nested, the coordinator wired in one call; and snapshot tests of the sections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use eac_accessor::prelude::*;
use eac_accessor::testing::Scrub;
use eac_tests::{APP_TOML, ConfigDir, SECRET};
use eac_tower::admin::{self, AdminConfig};
use eac_tower::{EaCLayer, Section};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The user's section: `Debug` derived as usual, the key typed `Secret`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema, EaCSection)]
struct Upstream {
    url: String,
    api_key: Secret<String>,
}

#[derive(Clone)]
struct AppState {
    hits: Arc<AtomicUsize>,
}

async fn upstream_url(State(app): State<AppState>, upstream: Section<Upstream>) -> String {
    app.hits.fetch_add(1, Ordering::Relaxed);
    upstream.url.clone()
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get_(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_users_service_nests_the_admin_in_its_router_and_refreshes_through_the_coordinator() {
    let dir = ConfigDir::new();
    let file = |url: &str| format!("[upstream]\nurl = \"{url}\"\napi_key = \"{SECRET}\"\n");
    dir.write("app.toml", &file("http://one"));
    let config = EaCAccessor::builder()
        .section::<Upstream>()
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();
    let reloads = ReloadCoordinator::new(config.clone(), ReloadConfig::default());
    let state = AppState {
        hits: Arc::default(),
    };
    let app: Router = Router::new()
        .route("/", get(upstream_url))
        .nest(
            admin::DEFAULT_PREFIX,
            admin::router(
                config.clone(),
                AdminConfig::new()
                    .token(Some("t0ken"))
                    .coordinator(&reloads),
            ),
        )
        .with_state(state.clone())
        .layer(EaCLayer::new(config.clone()));

    assert_eq!(
        call(&app, get_("/")).await,
        (StatusCode::OK, "http://one".into())
    );
    assert_eq!(state.hits.load(Ordering::Relaxed), 1);

    // The admin refresh runs through the coordinator: one run, counted there.
    dir.write("app.toml", &file("http://two"));
    let refresh = Request::post("/_internal/eac/refresh")
        .header("x-eac-refresh-token", "t0ken")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&app, refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(reloads.runs(), 1);
    assert_eq!(call(&app, get_("/")).await.1, "http://two");

    // The derived `Debug` hides the secret.
    let shown = format!("{:?}", config.load().section::<Upstream>());
    assert_eq!(
        shown,
        r#"Upstream { url: "http://two", api_key: [redacted] }"#
    );
    assert!(!shown.contains(SECRET));
}

#[test]
fn the_example_sections_render_for_snapshot_tests_without_secrets_or_temp_paths() {
    let dir = ConfigDir::with_app();
    let config = crate::four_sections()
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();
    let scrub = Scrub::new().path(dir.path(), "[config]");
    let rendered = scrub.snapshot(&config.load());
    assert!(!rendered.to_string().contains(SECRET));
    insta::assert_json_snapshot!("example_sections", rendered);

    dir.write(
        "app.toml",
        &APP_TOML.replace("max_body_bytes = 1048576", "max_body_bytes = 0"),
    );
    let errors = config.reload(Origin::Refresh).unwrap_err();
    let text = scrub.errors(&errors);
    assert!(!text.contains(&dir.path().display().to_string()), "{text}");
    insta::assert_snapshot!("example_sections_rejected", text);
}
