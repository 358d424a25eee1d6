//! File write → new value visible to readers, minus the debounce, over 200 edits.
//! Run: `cargo bench -p eac-accessor --bench watch`.

use std::time::{Duration, Instant};

use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::Dir;
use eac_accessor::{EaCAccessor, EaCSection};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Counter {
    n: u64,
}

impl EaCSection for Counter {
    const PATH: &'static str = "counter";
}

const EDITS: u64 = 200;
const DEBOUNCE: Duration = Duration::from_millis(20);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let edits = if quick { 3 } else { EDITS };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("app.toml");
        std::fs::write(&file, "[counter]\nn = 0\n").expect("write");
        let accessor = EaCAccessor::builder()
            .section::<Counter>()
            .source(Dir::new(dir.path()))
            .build()
            .expect("valid");
        let mut config = ReloadConfig::default();
        config.debounce = DEBOUNCE;
        config.cooldown = Duration::ZERO;
        let reloads = ReloadCoordinator::new(accessor.clone(), config);
        let _watcher = reloads.watch_dir(dir.path()).expect("watch");
        let mut changes = accessor.subscribe::<Counter>();

        let mut latencies = Vec::with_capacity(edits as usize);
        for n in 1..=edits {
            let started = Instant::now();
            std::fs::write(&file, format!("[counter]\nn = {n}\n")).expect("write");
            loop {
                tokio::time::timeout(Duration::from_secs(5), changes.changed())
                    .await
                    .expect("visible within 5 s")
                    .expect("accessor alive");
                if changes.latest().1.n == n {
                    break;
                }
            }
            latencies.push(started.elapsed().saturating_sub(DEBOUNCE));
        }
        reloads.shutdown().await;

        latencies.sort();
        let median = percentile(&latencies, 0.5);
        let p99 = percentile(&latencies, 0.99);
        println!(
            "file edit -> visible, minus the {} ms debounce, over {edits} edits: median {:.2} ms, p99 {:.2} ms (target p99 <= 25 ms)",
            DEBOUNCE.as_millis(),
            median.as_secs_f64() * 1000.0,
            p99.as_secs_f64() * 1000.0,
        );
    });
}
