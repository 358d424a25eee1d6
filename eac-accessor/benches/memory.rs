//! Memory after 1M publishes against after 1k: DESIGN.md's "memory after 1M publishes
//! ≤ memory after 1k publishes + 2 MB", measured by driving the accessor directly.
//!
//! Run with `cargo bench -p eac-accessor --bench memory` (about a minute: a million
//! reloads). Each reload publishes (two documents alternate) while a reader keeps a
//! `CachedReader` and loads between publishes, as a worker thread would. The resident
//! set (`VmRSS` of `/proc/self/status`) is read after 1,000 and after `PUBLISHES`
//! publishes. Without `--bench` (as `cargo test --benches` runs it), 2,000 publishes.

use std::sync::Arc;

use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, Origin};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "limits")]
struct Limits {
    max_body_bytes: u64,
    request_timeout_ms: u64,
}

const DOC_A: &str = r#"{"limits": {"max_body_bytes": 1024, "request_timeout_ms": 5000}}"#;
const DOC_B: &str = r#"{"limits": {"max_body_bytes": 2048, "request_timeout_ms": 5000}}"#;
const PUBLISHES: u64 = 1_000_000;

/// The resident set size of this process, in kB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let total = if measuring { PUBLISHES } else { 2_000 };
    let doc = Memory::new("bench", Format::Json, DOC_A);
    let accessor = EaCAccessor::builder()
        .section::<Limits>()
        .source(doc.clone())
        .build()
        .expect("the bench document is valid");
    let mut reader = accessor.cached();
    let texts: [Arc<str>; 2] = [DOC_B.into(), DOC_A.into()];
    let mut after_1k = 0;
    for i in 0..total {
        doc.set(Arc::clone(&texts[(i % 2) as usize]));
        let outcome = accessor.reload(Origin::Refresh).expect("valid");
        assert!(outcome.is_published(), "the two documents differ");
        drop(outcome);
        let limits = reader.load().section::<Limits>();
        assert_eq!(limits.request_timeout_ms, 5000);
        assert_eq!(limits.max_body_bytes, if i % 2 == 0 { 2048 } else { 1024 });
        if i + 1 == 1_000 {
            after_1k = rss_kb();
        }
    }
    let after_all = rss_kb();
    assert_eq!(accessor.load().version(), total + 1);
    println!(
        "memory: VmRSS after 1,000 publishes {after_1k} kB, after {total} publishes {after_all} kB: {:+} kB (target <= +2048 kB) {}",
        after_all as i64 - after_1k as i64,
        if after_all <= after_1k + 2048 {
            "ok"
        } else {
            "MISSED"
        }
    );
}
