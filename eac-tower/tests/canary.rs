//! A canary inside one process, through a real axum service on loopback: `EaCLayer`
//! gives each request the stable version or the canary by a sticky key, counts what
//! each one's requests meet, and the guard promotes or aborts the canary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;
use eac_accessor::canary::CanaryConfig;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator, ReloadMode, Triggered};
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, Event, Origin, Outcome};
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

/// One answer: status, `x-eac-version`, the body's two readings of the version, and the
/// greeting it read.
struct Answer {
    status: StatusCode,
    version: u64,
    read: (u64, u64),
    message: String,
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
        self.get_with(&self.client, Some(user)).await
    }

    /// `GET /` through `client`, as user `user` when given (else without the key header).
    async fn get_with(
        &self,
        client: &Client<HttpConnector, Empty<Bytes>>,
        user: Option<&str>,
    ) -> Answer {
        let mut request = hyper::Request::builder().uri(format!("http://{}/", self.address));
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        let response = client
            .request(request.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let version = response.headers()["x-eac-version"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let mut words = body.splitn(3, ' ');
        let mut number = || words.next().unwrap().parse::<u64>().unwrap_or(0);
        let read = (number(), number());
        Answer {
            status,
            version,
            read,
            message: words.next().unwrap_or("").to_owned(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_canary_runs_every_reader_but_its_requests_stays_stable_then_moves_once() {
    // Share 1.0: every request is the canary's, so any reader that follows it shows.
    let service = Service::start(config(1.0, Duration::from_secs(600), 200)).await;
    let accessor = &service.accessor;
    let stable = accessor.load().version();
    let cell = accessor.section_cell::<Greeting>();
    let mut kept = accessor.cached();
    let mut kept_section = accessor.cached_section::<Greeting>();
    assert_eq!(kept.load().version(), stable);
    assert_eq!(kept_section.load().message, "stable");
    let mut watch = accessor.subscribe::<Greeting>();
    let told = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::clone(&told);
    let _subscription = accessor.on_change::<Greeting, _>(move |change| {
        calls.lock().unwrap().push(change.version);
    });
    let mut events = accessor.events();

    let canary = service
        .change("canary", false)
        .await
        .expect("a canary started");
    for user in 0..20 {
        let answer = service.get(&format!("user-{user}")).await;
        assert_eq!(
            (answer.version, answer.message.as_str()),
            (canary, "canary")
        );
    }
    let stays_stable = |kept: &mut eac_accessor::CachedReader,
                        kept_section: &mut eac_accessor::CachedSection<Greeting>,
                        watch: &eac_accessor::SectionWatch<Greeting>| {
        assert_eq!(accessor.load().version(), stable);
        assert_eq!(accessor.load().section::<Greeting>().message, "stable");
        assert_eq!(accessor.status().version, stable);
        assert_eq!(cell.load().version(), stable);
        assert_eq!(cell.load().message, "stable");
        assert_eq!(kept.load().version(), stable);
        assert_eq!(kept_section.load().message, "stable");
        assert_eq!(accessor.cached().load().version(), stable, "a new reader");
        assert_eq!(
            accessor.cached_section::<Greeting>().load().message,
            "stable"
        );
        assert!(!watch.has_changed(), "a subscriber was woken by the canary");
        assert!(told.lock().unwrap().is_empty(), "a callback saw the canary");
    };
    stays_stable(&mut kept, &mut kept_section, &watch);
    match events.try_recv() {
        Ok(Event::CanaryStarted {
            version, canary: c, ..
        }) => assert_eq!((version, c), (stable, canary)),
        other => panic!("expected the canary's start, got {other:?}"),
    }
    assert!(events.try_recv().is_err(), "nothing published");

    let promoted = service.reloads.promote_canary().await.unwrap();
    assert_eq!(promoted.snapshot().version(), canary);
    assert_eq!(accessor.load().version(), canary);
    assert_eq!(accessor.status().version, canary);
    assert_eq!(cell.load().version(), canary);
    assert_eq!(cell.load().message, "canary");
    assert_eq!(kept.load().version(), canary);
    assert_eq!(kept_section.load().message, "canary");
    assert!(watch.has_changed());
    let (version, greeting) = watch.latest();
    assert_eq!((version, greeting.message.as_str()), (canary, "canary"));
    // Told once, in the publish: then the sources are read again after the promotion
    // (the same content, unchanged), and nothing moves a second time.
    let mut published = Vec::new();
    let mut ended = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("the sources were not read again after the promotion")
            .unwrap();
        match event {
            Event::Published { version, .. } => published.push(version),
            Event::CanaryEnded { decision, .. } => ended.push(decision),
            Event::Unchanged { version, .. } => {
                assert_eq!(version, canary);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(published, [canary]);
    assert_eq!(ended, ["promoted"]);
    assert_eq!(*told.lock().unwrap(), [canary]);
    assert!(!watch.has_changed(), "a subscriber was woken twice");
    assert_eq!(accessor.load().version(), canary);
    assert_eq!(service.get("anyone").await.version, canary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_header_the_client_address_keeps_one_version() {
    let service = Service::start(config(0.5, Duration::from_secs(600), 200)).await;
    let stable = service.accessor.load().version();
    let canary = service
        .change("canary", false)
        .await
        .expect("a canary started");
    // Each client connects from its own loopback address (127.0.0.2, .3, …), a new
    // connection (and port) per request, without the `x-user` header.
    let from = |last: u8| {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(std::net::Ipv4Addr::new(127, 0, 0, last).into()));
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build::<_, Empty<Bytes>>(connector)
    };
    let mut roles = HashMap::new();
    for last in 2..42u8 {
        let client = from(last);
        let first = service.get_with(&client, None).await.version;
        assert!(first == stable || first == canary, "served {first}");
        for _ in 0..5 {
            let answer = service.get_with(&client, None).await;
            assert_eq!(answer.read, (answer.version, answer.version));
            assert_eq!(
                answer.version, first,
                "127.0.0.{last} saw another version without the header"
            );
        }
        roles.insert(last, first);
    }
    // The address decides, not one fixed role for every request without a key.
    let canaries = roles.values().filter(|v| **v == canary).count();
    assert!(
        (5..=35).contains(&canaries),
        "{canaries} of 40 addresses on the canary"
    );
    // The header, when present, wins over the address: users behind one address split.
    let one_address = from(2);
    let mut seen = Vec::new();
    for user in 0..40 {
        let answer = service
            .get_with(&one_address, Some(&format!("user-{user}")))
            .await;
        seen.push(answer.version);
    }
    assert!(seen.contains(&stable) && seen.contains(&canary), "{seen:?}");
}

/// The value of the sample `series` (name and labels as rendered) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

// One thread: the server, the client and the guard's exports all see this test's own
// recorder (`set_default_local_recorder`), and nothing global is installed.
#[tokio::test(flavor = "current_thread")]
async fn each_role_s_requests_errors_and_latency_are_exported_as_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let service = Arc::new(Service::start(config(0.5, Duration::from_secs(600), 30)).await);
    let stable = service.accessor.load().version();
    let canary = service
        .change("hurting", true)
        .await
        .expect("a canary started");
    // Several users at once: requests are in flight when the judge decides.
    const CLIENTS: u64 = 8;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let service = Arc::clone(&service);
            tokio::spawn(async move {
                let (mut on_stable, mut on_canary) = (0u64, 0u64);
                let started = Instant::now();
                while service.reloads.canary().is_some() {
                    assert!(
                        started.elapsed() < Duration::from_secs(20),
                        "the canary was not aborted"
                    );
                    let user = format!("client-{c}-{}", on_stable + on_canary);
                    let answer = service.get(&user).await;
                    if answer.version == canary {
                        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
                        on_canary += 1;
                    } else {
                        assert_eq!((answer.version, answer.status), (stable, StatusCode::OK));
                        on_stable += 1;
                    }
                }
                (on_stable, on_canary)
            })
        })
        .collect();
    let (mut on_stable, mut on_canary) = (0, 0);
    for client in clients {
        let (s, c) = client.await.unwrap();
        on_stable += s;
        on_canary += c;
    }
    assert!(on_canary >= 30 && on_stable > 0);
    // Every request the canary served is counted: requests, 5xx, one latency each — also
    // those answered after the judge's last look, as it was being aborted.
    let expected = [
        ("eac_canary_requests_total{role=\"canary\"}", on_canary),
        ("eac_canary_errors_total{role=\"canary\"}", on_canary),
        (
            "eac_canary_latency_seconds_count{role=\"canary\"}",
            on_canary,
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = metrics.render();
        let done = expected
            .iter()
            .all(|(s, n)| sample(&text, s) == Some(*n as f64));
        if done || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for (series, n) in expected {
        assert_eq!(sample(&text, series), Some(n as f64), "{series}\n{text}");
    }
    // So is every stable one but, at most, each client's last: sent while the canary ran
    // and pinned after it ended, that one was no canary's request.
    let counted = sample(&text, "eac_canary_requests_total{role=\"stable\"}").unwrap_or(0.0);
    assert!(
        (on_stable - CLIENTS) as f64 <= counted && counted <= on_stable as f64,
        "stable requests: {counted} of {on_stable}\n{text}"
    );
    // The stable version's latencies are timed for one request in 16 on each thread
    // (the first of each 16): a thread that metered n of them timed ⌈n / 16⌉.
    let timed = sample(&text, "eac_canary_latency_seconds_count{role=\"stable\"}").unwrap_or(0.0);
    let threads = 16.0; // at most, on this test's runtime
    assert!(
        counted / 16.0 <= timed && timed <= counted / 16.0 + threads,
        "stable latencies: {timed} timed of {counted}\n{text}"
    );
    // The stable version answered no 5xx: none counted.
    assert_eq!(
        sample(&text, "eac_canary_errors_total{role=\"stable\"}").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    // Latencies in seconds: loopback answers, well under a second each.
    let sum = sample(&text, "eac_canary_latency_seconds_sum{role=\"canary\"}").unwrap();
    assert!(sum > 0.0 && sum < on_canary as f64, "{sum}\n{text}");
}
