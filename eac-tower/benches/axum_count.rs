//! N requests through one axum `Router`, for counting instructions per request under
//! callgrind: `eac-accessor/benches/callgrind.sh eac-tower axum_count` runs each variant
//! with two N's and subtracts, so that setup cancels out.
//!
//! Every variant is the same router — one `GET /` route whose handler extracts one
//! section and reads one field of it, the layer added with `Router::layer` — over the
//! same JSON document, one request at a time (`ready` + `call`, polled once with a no-op
//! waker: axum's futures are ready at once).
//!
//! Variants: `eac-header` (`EaCLayer` as shipped, with the `x-eac-version` header, and
//! the `Section<T>` extractor), `eac` (the same, header off), `dc-axum`
//! (dynamic-config-axum: its `SnapshotLayer` over `sections![T]` and its `Config<T>`
//! extractor; it sets no header), `dc-axum-header` (the same, then tower-http's
//! `SetResponseHeader` with a fixed `x-eac-version` value, stacked in one
//! `Router::layer`: the peer doing the header's work by hand). To split each figure into
//! its parts: `axum` (the router and a handler with no extractor and no layer: the
//! floor), `eac-layer` (`EaCLayer`, header off, and that handler: the layer alone),
//! `dc-axum-layer` (the peer's layer alone), `add-extension` (tower-http's
//! `AddExtension` inserting one fixed `PinnedSnapshot`, and the `Section<T>` handler: the
//! least any layer feeding that extractor can do, to set beside `eac`).
//! Without a variant (as `cargo bench` and `cargo test --benches` run it), each runs 1000
//! requests, as a smoke test; `variants` prints their names.

// Only its command line is used here.
#[allow(dead_code)]
mod fixture;

use std::hint::black_box;
use std::io::Write;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use dynamic_config::dynamic_config;
use dynamic_config_axum::{Config, SnapshotLayer, sections};
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection};
use eac_tower::{EaCLayer, PinnedSnapshot, Section};
use futures_util::FutureExt;
use http::{HeaderValue, Request};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::add_extension::AddExtensionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// The one document both read.
const DOC: &str = r#"{"limits": {"max_body_bytes": 1048576, "request_timeout_ms": 5000}}"#;

/// The section, as eac sees it.
#[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
#[eac(path = "limits")]
struct Limits {
    max_body_bytes: u64,
    #[allow(dead_code)]
    request_timeout_ms: u64,
}

/// The same section, as dynamic-config sees it (its attribute owns the type's statics).
#[dynamic_config]
#[derive(serde::Deserialize)]
struct PeerLimits {
    max_body_bytes: u64,
    #[allow(dead_code)]
    request_timeout_ms: u64,
}

const VARIANTS: &[&str] = &[
    "eac-header",
    "eac",
    "dc-axum",
    "dc-axum-header",
    "axum",
    "eac-layer",
    "dc-axum-layer",
    "add-extension",
];

async fn eac_handler(limits: Section<Limits>) {
    black_box(limits.max_body_bytes);
}

async fn peer_handler(Config(limits): Config<PeerLimits>) {
    black_box(limits.max_body_bytes);
}

/// The same handler with no extractor, for the floor and the layers alone.
async fn plain_handler() {
    black_box(1048576u64);
}

fn accessor() -> EaCAccessor {
    EaCAccessor::builder()
        .section::<Limits>()
        .source(Memory::new("bench", Format::Json, DOC))
        .build()
        .expect("the bench document is valid")
}

/// Installs `DOC` as `PeerLimits::current()`, from a file as dynamic-config reads one;
/// returns the folder holding the file.
fn peer() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("app.json");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(DOC.as_bytes()))
        .expect("the bench document is written");
    PeerLimits::builder("limits")
        .file(path.to_string_lossy().into_owned())
        .init()
        .expect("the bench document is valid");
    dir
}

/// `n` requests through `router`, each polled to completion without a runtime.
fn requests(n: u64, mut router: Router) {
    for _ in 0..black_box(n) {
        let ready = ServiceExt::<Request<Body>>::ready(&mut router)
            .now_or_never()
            .expect("ready")
            .expect("ok");
        let response = ready
            .call(Request::new(Body::empty()))
            .now_or_never()
            .expect("done")
            .expect("ok");
        debug_assert!(response.status().is_success(), "{}", response.status());
        black_box(response);
    }
}

fn version_header() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(eac_tower::VERSION_HEADER, HeaderValue::from_static("1"))
}

fn run(variant: &str, n: u64) {
    match variant {
        "eac-header" => requests(
            n,
            Router::new()
                .route("/", get(eac_handler))
                .layer(EaCLayer::new(accessor())),
        ),
        "eac" => requests(
            n,
            Router::new()
                .route("/", get(eac_handler))
                .layer(EaCLayer::new(accessor()).version_header(false)),
        ),
        "dc-axum" => {
            let _dir = peer();
            requests(
                n,
                Router::new()
                    .route("/", get(peer_handler))
                    .layer(SnapshotLayer::new(sections![PeerLimits])),
            )
        }
        "dc-axum-header" => {
            let _dir = peer();
            requests(
                n,
                Router::new()
                    .route("/", get(peer_handler))
                    // One `Router::layer`, as `EaCLayer` is one: each call boxes the
                    // routes again.
                    .layer(
                        ServiceBuilder::new()
                            .layer(SnapshotLayer::new(sections![PeerLimits]))
                            .layer(version_header()),
                    ),
            )
        }
        "axum" => requests(n, Router::new().route("/", get(plain_handler))),
        "eac-layer" => requests(
            n,
            Router::new()
                .route("/", get(plain_handler))
                .layer(EaCLayer::new(accessor()).version_header(false)),
        ),
        "dc-axum-layer" => {
            let _dir = peer();
            requests(
                n,
                Router::new()
                    .route("/", get(plain_handler))
                    .layer(SnapshotLayer::new(sections![PeerLimits])),
            )
        }
        "add-extension" => {
            let accessor = accessor();
            requests(
                n,
                Router::new()
                    .route("/", get(eac_handler))
                    .layer(AddExtensionLayer::new(PinnedSnapshot(accessor.load_full()))),
            )
        }
        other => panic!("unknown variant `{other}`; one of {VARIANTS:?}"),
    }
}

fn main() {
    fixture::count_main(VARIANTS, run);
}
