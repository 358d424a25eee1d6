//! A canary inside one process, through a real axum service on loopback: `EaCLayer`
//! gives each request the stable version or the canary by a sticky key, counts what
//! each one's requests meet, and the guard promotes or aborts the canary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use eac_accessor::canary::CanaryConfig;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator, ReloadMode, Triggered};
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, Origin, Outcome};
use eac_tower::{EaCLayer, Pinned};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Greeting {
    message: String,
}
impl EaCSection for Greeting {
    const PATH: &'static str = "greeting";
}

/// `fail = true`: every request answers 500.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Behavior {
    #[serde(default)]
    fail: bool,
}
impl EaCSection for Behavior {
    const PATH: &'static str = "behavior";
}

fn doc(message: &str, fail: bool) -> String {
    format!("[greeting]\nmessage = \"{message}\"\n[behavior]\nfail = {fail}\n")
}

/// Reads the pinned version twice, a few awaits apart, and answers with both.
async fn handler(Pinned(snapshot): Pinned) -> (StatusCode, String) {
    let first = snapshot.version();
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    let second = snapshot.version();
    let message = &snapshot.section::<Greeting>().message;
    let status = if snapshot.section::<Behavior>().fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (status, format!("{first} {second} {message}"))
}

struct Service {
    address: SocketAddr,
    doc: Memory,
    accessor: EaCAccessor,
    reloads: ReloadCoordinator,
    client: Client<HttpConnector, Empty<Bytes>>,
    server: tokio::task::JoinHandle<()>,
}

/// One answer: status, `x-eac-version`, and the body's two readings of the version.
struct Answer {
    status: StatusCode,
    version: u64,
    read: (u64, u64),
}

impl Service {
    async fn start(canary: CanaryConfig) -> Service {
        let doc = Memory::new("app.toml", Format::Toml, doc("stable", false));
        let accessor = EaCAccessor::builder()
            .section::<Greeting>()
            .section::<Behavior>()
            .source(doc.clone())
            .build()
            .unwrap();
        let mut config = ReloadConfig::default();
        config.cooldown = Duration::ZERO;
        config.mode = ReloadMode::Canary;
        config.canary = canary;
        let reloads = ReloadCoordinator::new(accessor.clone(), config);
        let app = Router::new()
            .route("/", get(handler))
            .layer(EaCLayer::new(accessor.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Service {
            address,
            doc,
            accessor,
            reloads,
            client: Client::builder(TokioExecutor::new()).build_http(),
            server,
        }
    }

    /// Changes the document and triggers a reload: the canary's version when one started.
    async fn change(&self, message: &str, fail: bool) -> Option<u64> {
        self.doc.set(doc(message, fail));
        match self.reloads.trigger(Origin::Refresh).await.unwrap() {
            Triggered::Reloaded(Outcome::Canary { canary, .. }) => Some(canary.version()),
            _ => None,
        }
    }

    /// `GET /` as user `user` (the `x-user` key header).
    async fn get(&self, user: &str) -> Answer {
        let request = hyper::Request::builder()
            .uri(format!("http://{}/", self.address))
            .header("x-user", user)
            .body(Empty::new())
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let version = response.headers()["x-eac-version"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let mut numbers = body.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
        let read = (numbers.next().unwrap(), numbers.next().unwrap());
        Answer {
            status,
            version,
            read,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn config(share: f64, window: Duration, min_requests: u64) -> CanaryConfig {
    let mut config = CanaryConfig::default();
    config.share = share;
    config.window = window;
    config.thresholds.min_requests = min_requests;
    config.key_header = Some("x-user".into());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_serves_its_share_sticky_by_key_one_version_per_request() {
    let service = Service::start(config(0.25, Duration::from_secs(600), 200)).await;
    let stable = service.accessor.load().version();
    let canary = service
        .change("canary", false)
        .await
        .expect("a canary started");
    assert!(canary > stable);
    // Everything but the requests stays on the stable version.
    assert_eq!(service.accessor.load().version(), stable);
    let status = service.accessor.status();
    assert_eq!(status.version, stable);
    assert_eq!(status.canary.as_ref().unwrap().version, canary);

    // 1,200 users: about a quarter see the canary (binomial, 5 sd either side).
    let mut served = HashMap::new();
    for user in 0..1200 {
        let answer = service.get(&format!("user-{user}")).await;
        assert_eq!(answer.status, StatusCode::OK);
        // One version from the first read to the last, and the header says which.
        assert_eq!(answer.read, (answer.version, answer.version));
        assert!(answer.version == stable || answer.version == canary);
        served.insert(user, answer.version);
    }
    let canaries = served.values().filter(|v| **v == canary).count();
    assert!(
        (225..=375).contains(&canaries),
        "{canaries} of 1200 on the canary"
    );
    // The same user, the same version, request after request.
    for user in 0..40 {
        for _ in 0..5 {
            assert_eq!(
                service.get(&format!("user-{user}")).await.version,
                served[&user]
            );
        }
    }
    // The layer counted each role's requests.
    let status = service.accessor.status().canary.unwrap();
    assert_eq!(
        status.canary.requests,
        canaries as u64 + (0..40).filter(|u| served[u] == canary).count() as u64 * 5
    );
    assert_eq!(status.stable.requests + status.canary.requests, 1400);

    // Aborted by hand: nothing published, and no request is served by it after.
    service.reloads.abort_canary().await.unwrap();
    assert_eq!(service.accessor.load().version(), stable);
    for user in 0..300 {
        assert_eq!(service.get(&format!("user-{user}")).await.version, stable);
    }
    let rejection = service.accessor.status().last_rejection.unwrap();
    assert_eq!(rejection.errors[0].message(), "canary: aborted by hand");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hurting_canary_is_aborted_with_its_figures_and_serves_nothing_after() {
    let service = Service::start(config(0.5, Duration::from_secs(600), 50)).await;
    let stable = service.accessor.load().version();
    let canary = service
        .change("hurting", true)
        .await
        .expect("a canary started");
    let started = Instant::now();
    let mut user = 0;
    while service.reloads.canary().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the canary was not aborted"
        );
        user += 1;
        service.get(&format!("user-{user}")).await;
    }
    // Recorded as a rejection, with the figures.
    let rejection = service.accessor.status().last_rejection.unwrap();
    let why = rejection.errors[0].message();
    assert!(why.starts_with("canary: 5xx 100.0% vs 0.0% on "), "{why}");
    assert_eq!(service.accessor.load().version(), stable);
    assert!(
        service
            .accessor
            .history()
            .iter()
            .all(|e| e.version != canary)
    );
    for user in 0..300 {
        let answer = service.get(&format!("user-{user}")).await;
        assert_eq!((answer.version, answer.status), (stable, StatusCode::OK));
    }
    // The same content is not canaried again; other content is.
    assert_eq!(service.change("hurting", true).await, None);
    assert!(service.reloads.canary().is_none());
    let again = service
        .change("healed", false)
        .await
        .expect("new content is canaried");
    assert!(again > canary, "a canary's number is never reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_after_its_window_and_subscribers_are_told_once() {
    let service = Service::start(config(0.5, Duration::from_millis(500), 20)).await;
    let told = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&told);
    let _subscription = service.accessor.on_change::<Greeting, _>(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let canary = service
        .change("better", false)
        .await
        .expect("a canary started");
    assert_eq!(
        told.load(Ordering::SeqCst),
        0,
        "subscribers stay on the stable version"
    );
    let started = Instant::now();
    let mut user = 0;
    while service.accessor.load().version() != canary {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the canary was not promoted"
        );
        user += 1;
        service.get(&format!("user-{user}")).await;
    }
    // A publish like any other: the canary's own version, told once (the callbacks run
    // right after the store, on the publishing thread).
    let deadline = Instant::now() + Duration::from_secs(5);
    while told.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(told.load(Ordering::SeqCst), 1);
    assert!(service.reloads.canary().is_none());
    for user in 0..50 {
        assert_eq!(service.get(&format!("user-{user}")).await.version, canary);
    }
    let status = service.accessor.status();
    assert_eq!(status.last_reload.unwrap().version, canary);
    assert!(
        service
            .accessor
            .history()
            .iter()
            .any(|e| e.version == canary)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_change_replaces_the_canary() {
    let service = Service::start(config(0.5, Duration::from_secs(600), 200)).await;
    let stable = service.accessor.load().version();
    let first = service.change("first", false).await.unwrap();
    let second = service.change("second", false).await.unwrap();
    assert!(second > first);
    assert_eq!(service.reloads.canary().unwrap().version(), second);
    for user in 0..200 {
        let version = service.get(&format!("user-{user}")).await.version;
        assert!(version == stable || version == second, "served {version}");
    }
    // Back to the stable content: the canary has nothing left to prove.
    assert_eq!(service.change("stable", false).await, None);
    assert!(service.reloads.canary().is_none());
    assert_eq!(service.accessor.load().version(), stable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_every_request_sees_one_version_while_canaries_come_and_go() {
    let service = Arc::new(Service::start(config(0.3, Duration::from_secs(600), 200)).await);
    let stable = service.accessor.load().version();
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let service = Arc::clone(&service);
            let answered = Arc::clone(&answered);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for i in 0..150 {
                    let answer = service.get(&format!("client-{c}-{i}")).await;
                    // One version from the first read to the last, and the header says it.
                    assert_eq!(answer.read, (answer.version, answer.version));
                    assert_eq!(answer.status, StatusCode::OK);
                    seen.push(answer.version);
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                seen
            })
        })
        .collect();
    // Meanwhile canaries start, replace one another, and end.
    let mut canaries = Vec::new();
    for round in 0..5 {
        canaries.extend(service.change(&format!("round {round}"), false).await);
        // Each canary serves requests before the next replaces it.
        let until = answered.load(Ordering::SeqCst) + 40;
        let deadline = Instant::now() + Duration::from_secs(10);
        while answered.load(Ordering::SeqCst) < until && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
    }
    service.reloads.abort_canary().await.unwrap();
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }
    assert_eq!(canaries.len(), 5, "each change started a canary");
    for version in &seen {
        assert!(
            *version == stable || canaries.contains(version),
            "served {version}, neither the stable version nor a canary"
        );
    }
    assert!(seen.contains(&stable));
    assert!(
        seen.iter().any(|v| canaries.contains(v)),
        "no canary served"
    );
}
