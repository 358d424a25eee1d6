//! N requests through one middleware, for counting instructions per request under
//! callgrind: `eac-accessor/benches/callgrind.sh eac-tower layer_count` runs each
//! variant with two N's and subtracts, so that setup cancels out.
//!
//! Variants: `add-extension` (tower-http inserting an `Arc` of the snapshot),
//! `add-extension-header` (the same, then tower-http's `SetResponseHeader` with a fixed
//! `x-eac-version` value: the work `EaCLayer` does by default, by hand), `eac`
//! (`EaCLayer`, header off), `eac-header` (`EaCLayer` with the `x-eac-version` header),
//! `eac-timeout` (`EaCLayer`, header off, then `LiveTimeoutLayer`), `eac-canary`
//! (`EaCLayer`, header off, while a canary runs: each request is given a role, and its
//! answer and latency are counted), `eac-keyed` and `eac-canary-keyed` (the same two
//! with each request carrying an `x-user` header, one of 1000 users in turn, and the
//! canary keyed by it: about 5% of the requests are the canary's).
//! Without a variant (as `cargo bench` and `cargo test --benches` run it), each runs 1000
//! requests, as a smoke test; `variants` prints their names.

mod fixture;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection};
use eac_tower::{EaCLayer, LiveTimeoutLayer, PinnedSnapshot};
use http::{Request, Response};
use tower::{Layer, Service, ServiceBuilder, service_fn};
use tower_http::add_extension::AddExtensionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use fixture::{accessor, clock, handler, once, once_with};

/// The section the canary's overlay changes.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Greeting {
    #[allow(dead_code)]
    message: String,
}
impl EaCSection for Greeting {
    const PATH: &'static str = "greeting";
}

const VARIANTS: &[&str] = &[
    "add-extension",
    "add-extension-header",
    "eac",
    "eac-header",
    "eac-timeout",
    "eac-canary",
    "eac-keyed",
    "eac-canary-keyed",
];

/// `n` requests through `service`, each with an `x-user` header: one of 1000 users in
/// turn.
fn keyed_requests<S>(n: u64, mut service: S)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let users: Vec<http::HeaderValue> = (0..1000)
        .map(|i| http::HeaderValue::try_from(format!("user-{i}")).expect("a header value"))
        .collect();
    for i in 0..black_box(n) {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert("x-user", users[i as usize % users.len()].clone());
        once_with(&mut service, request);
    }
}

/// An accessor with a canary running for an hour (`key_header` keys its users), its
/// guard never run; with the runtime and coordinator it started on, to keep.
fn with_canary(
    key_header: Option<&str>,
) -> (EaCAccessor, tokio::runtime::Runtime, ReloadCoordinator) {
    // A registered section, for the canary's overlay to change.
    let accessor = EaCAccessor::builder()
        .section::<Greeting>()
        .source(Memory::new(
            "bench",
            Format::Toml,
            "[greeting]\nmessage = \"hello\"\n",
        ))
        .build()
        .expect("valid");
    let runtime = clock();
    let mut config = ReloadConfig::default();
    config.canary.window = Duration::from_secs(3600);
    config.canary.key_header = key_header.map(str::to_owned);
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    let overlay = serde_json::json!({ "greeting": { "message": "canary" } });
    // Started on a runtime that is never driven again: its guard never runs.
    runtime
        .block_on(reloads.start_canary(overlay))
        .expect("a canary");
    assert!(accessor.canary().is_some());
    (accessor, runtime, reloads)
}

/// `n` requests through `service`, each polled to completion without a runtime.
fn requests<S>(n: u64, mut service: S)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    for _ in 0..black_box(n) {
        once(&mut service);
    }
}

fn run(variant: &str, n: u64) {
    let accessor = accessor();
    match variant {
        "add-extension" => requests(
            n,
            AddExtensionLayer::new(PinnedSnapshot(accessor.load_full())).layer(service_fn(handler)),
        ),
        "add-extension-header" => requests(
            n,
            ServiceBuilder::new()
                .layer(AddExtensionLayer::new(PinnedSnapshot(accessor.load_full())))
                .layer(SetResponseHeaderLayer::overriding(
                    eac_tower::VERSION_HEADER,
                    http::HeaderValue::from_static("1"),
                ))
                .service(service_fn(handler)),
        ),
        "eac" => requests(
            n,
            EaCLayer::new(accessor)
                .version_header(false)
                .layer(service_fn(handler)),
        ),
        "eac-header" => requests(n, EaCLayer::new(accessor).layer(service_fn(handler))),
        "eac-timeout" => {
            let clock = clock();
            let _clock = clock.enter();
            requests(
                n,
                ServiceBuilder::new()
                    .layer(EaCLayer::new(accessor.clone()).version_header(false))
                    .layer(LiveTimeoutLayer::new(accessor, |_| Duration::from_secs(30)))
                    .service(service_fn(handler)),
            )
        }
        "eac-canary" => {
            let (accessor, _runtime, _reloads) = with_canary(None);
            requests(
                n,
                EaCLayer::new(accessor)
                    .version_header(false)
                    .layer(service_fn(handler)),
            )
        }
        "eac-keyed" => keyed_requests(
            n,
            EaCLayer::new(accessor)
                .version_header(false)
                .layer(service_fn(handler)),
        ),
        "eac-canary-keyed" => {
            let (accessor, _runtime, _reloads) = with_canary(Some("x-user"));
            keyed_requests(
                n,
                EaCLayer::new(accessor)
                    .version_header(false)
                    .layer(service_fn(handler)),
            )
        }
        other => panic!("unknown variant `{other}`; one of {VARIANTS:?}"),
    }
}

fn main() {
    fixture::count_main(VARIANTS, run);
}
