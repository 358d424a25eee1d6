//! One request, one version: a handler that reads two sections with awaits between them
//! sees one version while a writer publishes continuously.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::routing::get;
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, Origin};
use eac_tower::{EaCLayer, Section};
use http::Request;
use tower::ServiceExt;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Left {
    n: u64,
}
impl EaCSection for Left {
    const PATH: &'static str = "left";
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Right {
    n: u64,
}
impl EaCSection for Right {
    const PATH: &'static str = "right";
}

fn doc(n: u64) -> String {
    format!("[left]\nn = {n}\n[right]\nn = {n}\n")
}

async fn handler(left: Section<Left>, right: Section<Right>) -> String {
    let first = left.n;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let second = right.n;
    format!("{first} {second} {}", left.snapshot().version())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_reads_one_version_while_a_writer_publishes() {
    let source = Memory::new("doc", Format::Toml, doc(0));
    let accessor = EaCAccessor::builder()
        .section::<Left>()
        .section::<Right>()
        .source(source.clone())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(handler))
        .layer(EaCLayer::new(accessor.clone()));

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, accessor) = (Arc::clone(&stop), accessor.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                source.set(doc(n));
                accessor.reload(Origin::Refresh).unwrap();
            }
            n
        })
    };

    let mut versions = BTreeSet::new();
    // At least 300 requests, and on until the writer has published during them (a loaded
    // machine may not run its thread at first), within a bound.
    for i in 0..100_000 {
        if i >= 300 && versions.len() > 1 {
            break;
        }
        let response = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let header: u64 = response.headers()["x-eac-version"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let parts: Vec<u64> = body.split(' ').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts[0], parts[1], "two sections from two versions: {body}");
        assert_eq!(parts[2], header, "the header names the version that served");
        assert_eq!(parts[0] + 1, parts[2], "content and version agree");
        versions.insert(parts[2]);
    }
    stop.store(true, Ordering::Relaxed);
    let published = writer.join().unwrap();
    assert!(published > 0);
    assert!(
        versions.len() > 1,
        "the writer published during the requests"
    );
}
