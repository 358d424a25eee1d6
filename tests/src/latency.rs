//! What the latency benches share: a section that holds a counter, the wait until a
//! change of it is visible, percentiles of the times measured, and their runtime.

use std::time::Duration;

use eac_accessor::{EaCSection, SectionWatch};
use schemars::JsonSchema;
use serde::Deserialize;

/// `[counter] n`: the value a bench changes, once per measured change.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
pub struct Counter {
    /// The change's number.
    pub n: u64,
}

impl EaCSection for Counter {
    const PATH: &'static str = "counter";
}

/// The document that sets the counter to `n`.
pub fn counter_toml(n: u64) -> String {
    format!("[counter]\nn = {n}\n")
}

/// Waits until `changes` shows the counter at `n`, each change within 5 s.
pub async fn until_counter(changes: &mut SectionWatch<Counter>, n: u64) {
    loop {
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .expect("visible within 5 s")
            .expect("accessor alive");
        if changes.latest().1.n == n {
            return;
        }
    }
}

/// The `p` percentile (0.0 to 1.0) of `sorted`, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Milliseconds, for a report.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The benches' runtime: two worker threads, I/O and timers on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Whether the bench runs quickly as a test (`cargo test --benches`) rather than
/// measuring (`cargo bench` passes `--bench`).
pub fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}
