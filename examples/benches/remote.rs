//! The remote source against a `DocServer` on loopback: a change at the server →
//! visible to readers, measured from the poll response that carries it, over 100
//! changes; and the cost of a `304` poll against a full fetch and parse of the same
//! document. Run: `cargo bench -p eac-examples --bench remote`.

use std::time::{Duration, Instant};

use eac_accessor::EaCAccessor;
use eac_accessor::reload::{PollConfig, ReloadConfig, ReloadCoordinator};
use eac_accessor::source::{Http, Source};
use eac_examples::doc_server::{DocServer, Document, Validators};
use eac_tests::latency::{Counter, counter_toml, ms, percentile, quick, runtime, until_counter};

const CHANGES: u64 = 100;
const POLL: Duration = Duration::from_millis(20);
const FETCHES: usize = 500;

/// A document of about 60 KB: the counter and 2,000 other keys.
fn document(n: u64) -> String {
    let mut text = counter_toml(n) + "\n[other]\n";
    for i in 0..2000 {
        text.push_str(&format!("key_{i:04} = \"a value of some length, {i}\"\n"));
    }
    text
}

/// A server of [`document`]`(0)` and a remote source that has fetched it.
async fn started() -> (DocServer, Http) {
    let server = DocServer::start("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("a server");
    server.set(Document::text("application/toml", document(0)));
    let remote = Http::new(&server.url("/app.toml")).expect("a URL");
    remote.start().await.expect("first fetch");
    (server, remote)
}

async fn change_to_visible(changes: u64) {
    let (server, remote) = started().await;
    let accessor = EaCAccessor::builder()
        .section::<Counter>()
        .allow_unknown_keys(true)
        .source(remote.clone())
        .build()
        .expect("valid");
    let mut config = ReloadConfig::default();
    config.cooldown = Duration::ZERO;
    let reloads = ReloadCoordinator::new(accessor.clone(), config);
    reloads
        .poll(&remote, PollConfig::every(POLL).jitter(0.0))
        .expect("polling");
    let mut watch = accessor.subscribe::<Counter>();

    let mut latencies = Vec::with_capacity(changes as usize);
    for n in 1..=changes {
        server.set(Document::text("application/toml", document(n)));
        until_counter(&mut watch, n).await;
        let visible = Instant::now();
        // The poll that carried the change: the last request answered 200.
        let carried = server
            .seen()
            .into_iter()
            .rev()
            .find(|s| s.status == 200)
            .expect("a 200");
        latencies.push(visible - carried.at);
    }
    reloads.shutdown().await;
    server.stop().await;

    latencies.sort();
    println!(
        "remote change -> visible, from the poll request that carried it, over {changes} changes \
         ({} KB document): median {:.2} ms, p99 {:.2} ms (target <= 50 ms)",
        document(0).len() / 1024,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
    );
}

async fn poll_costs(fetches: usize) {
    let (server, remote) = started().await;

    // A 304: the request and its answer, nothing parsed.
    let mut not_modified = Vec::with_capacity(fetches);
    for _ in 0..fetches {
        let started = Instant::now();
        remote.fetch().await.expect("a 304");
        not_modified.push(started.elapsed());
    }
    // The same document fetched whole (no validators, a new text each time) and parsed.
    server.validators(Validators::None);
    server.set(Document::text("application/toml", document(0) + "# {n}\n"));
    server.always_new(true);
    let mut full = Vec::with_capacity(fetches);
    for _ in 0..fetches {
        let started = Instant::now();
        remote.fetch().await.expect("a 200");
        let layers = remote.load().expect("loaded");
        for layer in layers {
            layer.parse_now().expect("parses");
        }
        full.push(started.elapsed());
    }
    server.stop().await;

    not_modified.sort();
    full.sort();
    let (a, b) = (percentile(&not_modified, 0.5), percentile(&full, 0.5));
    println!(
        "304 poll: median {:.3} ms; full fetch + parse of the same {} KB document: median {:.3} ms; \
         ratio {:.2} (over {fetches} each)",
        ms(a),
        document(0).len() / 1024,
        ms(b),
        a.as_secs_f64() / b.as_secs_f64(),
    );
}

fn main() {
    let quick = quick();
    runtime().block_on(async {
        change_to_visible(if quick { 3 } else { CHANGES }).await;
        poll_costs(if quick { 5 } else { FETCHES }).await;
    });
}
