//! Readers against a writer publishing continuously: every read is one complete, valid,
//! published version; versions never go backwards; old snapshots are freed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, FieldErrors, Origin};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

static CREATED: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A value that counts how many of it exist, to show that old snapshots are freed.
#[derive(Debug, JsonSchema)]
#[schemars(transparent)]
struct Counted(u64);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        CREATED.fetch_add(1, Ordering::SeqCst);
        Ok(Counted(v))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Valid only when `a == b` and `a == serial`: a torn or partial publish would show
/// a mismatch.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Pair {
    #[schemars(range(max = 1_000_000))]
    a: u64,
    b: u64,
    serial: Counted,
}

impl EaCSection for Pair {
    const PATH: &'static str = "pair";

    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.a != self.b {
            errors.add("b", "must equal a");
        }
        errors.into_result()
    }
}

fn doc(a: u64, b: u64) -> String {
    format!(r#"{{"pair": {{"a": {a}, "b": {b}, "serial": {a}}}}}"#)
}

#[test]
fn readers_only_ever_see_whole_valid_versions_in_order() {
    const PUBLISHES: u64 = 3000;
    let source = Memory::new("pair", Format::Json, doc(0, 0));
    let accessor = EaCAccessor::builder()
        .section::<Pair>()
        .source(source.clone())
        .build()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..3)
        .map(|_| {
            let accessor = accessor.clone();
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut last_version = 0;
                let mut reads = 0u64;
                loop {
                    // Read once more after seeing `done`, so the last read sees the last publish.
                    let finished = done.load(Ordering::Acquire);
                    let snapshot = accessor.load();
                    let pair = snapshot.section::<Pair>();
                    assert_eq!(pair.a, pair.b, "a torn section at v{}", snapshot.version());
                    assert_eq!(pair.a, pair.serial.0);
                    assert!(pair.a <= 1_000_000, "an invalid candidate was published");
                    assert!(
                        snapshot.version() >= last_version,
                        "versions went backwards"
                    );
                    // Each valid publish sets a to its version - 1: the content matches the version.
                    assert_eq!(pair.a, snapshot.version() - 1);
                    last_version = snapshot.version();
                    reads += 1;
                    if finished {
                        break;
                    }
                }
                (reads, last_version)
            })
        })
        .collect();

    let mut published = 0;
    let mut rejected = 0;
    for i in 1..=PUBLISHES {
        // Every third candidate is invalid in one of two ways.
        let text = match i % 3 {
            0 if i % 2 == 0 => doc(published + 1, published + 2),
            0 => doc(2_000_000, 2_000_000),
            _ => doc(published + 1, published + 1),
        };
        source.set(text);
        match accessor.reload(Origin::Refresh) {
            Ok(outcome) => {
                assert!(outcome.is_published());
                published += 1;
            }
            Err(_) => rejected += 1,
        }
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        let (reads, last_version) = reader.join().expect("a reader's assertion failed");
        assert!(reads > 0);
        assert_eq!(last_version, published + 1);
    }
    assert_eq!(rejected, PUBLISHES / 3);
    assert_eq!(accessor.load().version(), published + 1);

    // Every snapshot but the current one has been freed: no growth with reloads.
    let alive = CREATED.load(Ordering::SeqCst) - DROPPED.load(Ordering::SeqCst);
    assert_eq!(alive, 1, "old snapshots leaked");
    drop(accessor);
    let alive = CREATED.load(Ordering::SeqCst) - DROPPED.load(Ordering::SeqCst);
    assert_eq!(alive, 0, "the last snapshot outlived the accessor");
}
