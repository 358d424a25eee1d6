//! Memory after 1M publishes against after 1k: DESIGN.md's "memory after 1M publishes
//! ≤ memory after 1k publishes + 2 MB", measured by driving the accessor directly.
//!
//! Run with `cargo bench -p eac-accessor --bench memory` (a few minutes: a million
//! reloads). Each reload publishes (two documents alternate) while a reader keeps a
//! `CachedReader` and loads between publishes, as a worker thread would — and, as a
//! service would (issue 32), four reader threads read all along through a `SectionCell`,
//! `load()` and a resolver's value, a field subscriber is told of every change, and the
//! history keeps its versions. The resident set (`VmRSS`), the open descriptors and the
//! threads are read after 1,000 and after `PUBLISHES` publishes; at the end, every
//! resolver value built (each counted alive while it exists) must be gone but for the
//! few the kept versions and the readers still hold. Without `--bench` (as `cargo test
//! --benches` runs it), 2,000 publishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use eac_accessor::resolve::{ResolveError, Resolver};
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

/// Reader threads, as a service's workers.
const READERS: usize = 4;

/// The versions the history keeps (the builder's default).
const KEPT: u64 = 10;

/// Resolver values alive now.
static ALIVE: AtomicU64 = AtomicU64::new(0);

/// A resolver's value that counts itself alive.
struct Counted(u64);

impl Counted {
    fn new(value: u64) -> Counted {
        ALIVE.fetch_add(1, Ordering::SeqCst);
        Counted(value)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Entries of a folder of `/proc/self` (`fd`, `task`): descriptors or threads.
fn entries(dir: &str) -> usize {
    std::fs::read_dir(format!("/proc/self/{dir}")).map_or(0, |d| d.count())
}

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
        .resolver(Resolver::new("counted", |limits: &Limits| {
            Ok::<_, ResolveError>(Counted::new(limits.max_body_bytes))
        }))
        .source(doc.clone())
        .build()
        .expect("the bench document is valid");
    let mut reader = accessor.cached();
    // A field subscriber, told of every change.
    let told = Arc::new(AtomicU64::new(0));
    let _subscription = accessor.on_field_change(Limits::lens().max_body_bytes(), {
        let told = Arc::clone(&told);
        move |_| {
            told.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Readers all along: a cell, `load()` and the resolver's value, each checked to agree.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (accessor, stop) = (accessor.clone(), Arc::clone(&stop));
            let cell = accessor.section_cell::<Limits>();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let from_cell = cell.load().max_body_bytes;
                    let snapshot = accessor.load();
                    let limits = snapshot.section::<Limits>();
                    let counted = snapshot
                        .resolved::<Counted>()
                        .expect("the resolver's value");
                    assert_eq!(counted.0, limits.max_body_bytes, "one version per read");
                    assert!(from_cell == 1024 || from_cell == 2048);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let texts: [Arc<str>; 2] = [DOC_B.into(), DOC_A.into()];
    let mut after_1k = (0, 0, 0);
    for i in 0..total {
        doc.set(Arc::clone(&texts[(i % 2) as usize]));
        let outcome = accessor.reload(Origin::Refresh).expect("valid");
        assert!(outcome.is_published(), "the two documents differ");
        drop(outcome);
        let limits = reader.load().section::<Limits>();
        assert_eq!(limits.request_timeout_ms, 5000);
        assert_eq!(limits.max_body_bytes, if i % 2 == 0 { 2048 } else { 1024 });
        if i + 1 == 1_000 {
            after_1k = (rss_kb(), entries("fd"), entries("task"));
        }
    }
    let after_all = (rss_kb(), entries("fd"), entries("task"));
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(accessor.load().version(), total + 1);
    assert_eq!(
        told.load(Ordering::Relaxed),
        total,
        "a subscriber told once per change"
    );
    drop(reader);
    // The history's kept versions, the current one and any a drain still holds: a few.
    let alive = ALIVE.load(Ordering::SeqCst);
    println!(
        "memory: {total} publishes with {READERS} reader threads ({reads} reads: cell, load(), \
         the resolver's value), a field subscriber and the history on"
    );
    println!(
        "memory: VmRSS after 1,000 publishes {} kB, after {total} {} kB: {:+} kB (target <= +2048 kB) {}",
        after_1k.0,
        after_all.0,
        after_all.0 as i64 - after_1k.0 as i64,
        if after_all.0 <= after_1k.0 + 2048 {
            "ok"
        } else {
            "MISSED"
        }
    );
    println!(
        "memory: open descriptors {} then {} ({:+}), threads {} then {} ({:+}) (target +0, +0)",
        after_1k.1,
        after_all.1,
        after_all.1 as i64 - after_1k.1 as i64,
        after_1k.2,
        after_all.2,
        after_all.2 as i64 - after_1k.2 as i64,
    );
    println!(
        "memory: resolver values alive at the end {alive} of {} built (target: at most the {KEPT} kept versions and the current one)",
        total + 1
    );
    assert!(
        alive <= KEPT + 1,
        "{alive} resolver values outlived their last reader"
    );
}
