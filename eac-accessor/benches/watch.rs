//! File write → new value visible to readers, minus the debounce, over 200 edits.
//! Run: `cargo bench -p eac-accessor --bench watch`.

use std::time::{Duration, Instant};

use eac_accessor::EaCAccessor;
use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
use eac_accessor::source::Dir;
use eac_tests::latency::{Counter, counter_toml, ms, percentile, quick, runtime, until_counter};

const EDITS: u64 = 200;
const DEBOUNCE: Duration = Duration::from_millis(20);

fn main() {
    let edits = if quick() { 3 } else { EDITS };
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("app.toml");
        std::fs::write(&file, counter_toml(0)).expect("write");
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
            std::fs::write(&file, counter_toml(n)).expect("write");
            until_counter(&mut changes, n).await;
            latencies.push(started.elapsed().saturating_sub(DEBOUNCE));
        }
        reloads.shutdown().await;

        latencies.sort();
        println!(
            "file edit -> visible, minus the {} ms debounce, over {edits} edits: median {:.2} ms, p99 {:.2} ms (target p99 <= 25 ms)",
            DEBOUNCE.as_millis(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
        );
    });
}
