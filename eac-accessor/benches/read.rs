//! The read path: `EaCAccessor::load()` against its closest peer, dynamic-config 0.10
//! (`current()`), a bare `ArcSwap::load` and an `RwLock<Arc<T>>` read-and-clone, alone
//! and while another thread publishes in a loop.
//!
//! Run with `cargo bench -p eac-accessor --bench read`. After the criterion groups, a
//! summary measures every variant again, interleaved in rounds, and prints the ratios
//! that DESIGN.md's performance targets are stated in:
//!
//! - `load()` ≤ 1.2× a bare `ArcSwap::load`;
//! - `load()` ≤ 0.3× an `RwLock<Arc<T>>` read-and-clone, each while a writer publishes.
//!
//! Instructions per read (the figure DESIGN.md compares with dynamic-config) come from
//! `benches/read_count.rs` under callgrind: `eac-accessor/benches/callgrind.sh`.

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use eac_accessor::source::Memory;
use eac_accessor::{CachedReader, EaCAccessor, Origin, SectionCell};

mod peers;
use peers::{DOC_A, DOC_B, Limits, PeerLimits, Plain};

thread_local! {
    /// The reading thread's cached reader of the fixture's accessor.
    static CACHED: RefCell<Option<CachedReader>> = const { RefCell::new(None) };
}

/// The things being read, with what it takes to publish into each.
struct Fixture {
    accessor: EaCAccessor,
    cell: SectionCell<Limits>,
    doc: Memory,
    peer: dynamic_config::Builder<PeerLimits>,
    _peer_dir: tempfile::TempDir,
    swap: ArcSwap<Plain>,
    lock: RwLock<Arc<Plain>>,
}

impl Fixture {
    fn new() -> Fixture {
        let (accessor, doc) = peers::accessor();
        let (peer, _peer_dir) = peers::peer();
        Fixture {
            cell: accessor.section_cell(),
            accessor,
            doc,
            peer,
            _peer_dir,
            swap: peers::arcswap(),
            lock: peers::rwlock(),
        }
    }

    // --- reads ------------------------------------------------------------------------

    fn accessor_load(&self) {
        black_box(self.accessor.load());
    }

    fn accessor_field(&self) {
        black_box(self.accessor.load().section::<Limits>().max_body_bytes);
    }

    /// Through a `SectionCell`, the section's lookup done once.
    fn cell_field(&self) {
        black_box(self.cell.load().max_body_bytes);
    }

    /// Through a per-thread `CachedReader`, as a worker thread would keep one.
    fn cached_field(&self) {
        CACHED.with_borrow_mut(|reader| {
            let reader = reader.get_or_insert_with(|| self.accessor.cached());
            black_box(reader.load().section::<Limits>().max_body_bytes);
        });
    }

    fn peer_current(&self) {
        black_box(PeerLimits::current());
    }

    fn peer_field(&self) {
        black_box(PeerLimits::current().max_body_bytes);
    }

    fn arcswap_load(&self) {
        black_box(self.swap.load());
    }

    fn arcswap_field(&self) {
        black_box(self.swap.load().limits.max_body_bytes);
    }

    fn rwlock_clone(&self) {
        black_box(self.rwlock_read());
    }

    fn rwlock_field(&self) {
        black_box(self.rwlock_read().limits.max_body_bytes);
    }

    fn rwlock_read(&self) -> Arc<Plain> {
        peers::rwlock_read(&self.lock)
    }

    // --- writers: publish in a loop until `stop`, counting publishes --------------------

    fn accessor_writer(&self, stop: &AtomicBool, count: &AtomicU64) {
        let texts: [Arc<str>; 2] = [DOC_B.into(), DOC_A.into()];
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            self.doc.set(Arc::clone(&texts[i % 2]));
            let outcome = self
                .accessor
                .reload(Origin::Refresh)
                .expect("both bench documents are valid");
            assert!(outcome.is_published(), "the two documents differ");
            i += 1;
            count.fetch_add(1, Ordering::Relaxed);
        }
        // Leave document A current, as at the start.
        if i % 2 == 1 {
            self.doc.set(DOC_A);
            self.accessor.reload(Origin::Refresh).expect("valid");
        }
    }

    /// dynamic-config's own reload: its override layer alternates the value, and the
    /// builder re-reads its file and installs a new snapshot.
    fn peer_writer(&self, stop: &AtomicBool, count: &AtomicU64) {
        let values = [2048u64, 1024];
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            PeerLimits::set_override("max_body_bytes", values[i % 2]).expect("an override");
            self.peer.reload().expect("the bench document is valid");
            i += 1;
            count.fetch_add(1, Ordering::Relaxed);
        }
        PeerLimits::clear_overrides();
        self.peer.reload().expect("valid");
    }

    fn arcswap_writer(&self, stop: &AtomicBool, count: &AtomicU64) {
        let values = [Plain::new(2, 2048), Plain::new(1, 1024)];
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            self.swap.store(Arc::clone(&values[i % 2]));
            i += 1;
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.swap.store(Arc::clone(&values[1]));
    }

    fn rwlock_writer(&self, stop: &AtomicBool, count: &AtomicU64) {
        let values = [Plain::new(2, 2048), Plain::new(1, 1024)];
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            *self.lock.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&values[i % 2]);
            i += 1;
            count.fetch_add(1, Ordering::Relaxed);
        }
        *self.lock.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&values[1]);
    }

    fn rwlock_paced_writer(&self, stop: &AtomicBool, count: &AtomicU64) {
        let values = [Plain::new(2, 2048), Plain::new(1, 1024)];
        let period = Duration::from_secs(1) / PACED_RATE;
        let mut i = 0;
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            *self.lock.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&values[i % 2]);
            i += 1;
            count.fetch_add(1, Ordering::Relaxed);
            // Spin rather than sleep: the accessor's writer keeps a core busy as well.
            next += period;
            while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
        *self.lock.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&values[1]);
    }
}

/// Publishes per second of [`Fixture::rwlock_paced_writer`]: about what the accessor's
/// writer reaches on the bench machine, to compare at a like publish rate too.
const PACED_RATE: u32 = 200_000;

type Read = fn(&Fixture);
type Writer = fn(&Fixture, &AtomicBool, &AtomicU64);

/// Runs `work` while `writer` publishes on another thread; returns what `work` returned
/// and the writer's publishes per second. The writer has published at least once before
/// `work` starts, and is stopped and joined before this returns.
fn with_writer<R>(fixture: &Fixture, writer: Writer, work: impl FnOnce() -> R) -> (R, f64) {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    thread::scope(|s| {
        let handle = s.spawn(|| writer(fixture, &stop, &count));
        while count.load(Ordering::Relaxed) == 0 {
            thread::yield_now();
        }
        let (before, started) = (count.load(Ordering::Relaxed), Instant::now());
        let result = work();
        let rate =
            (count.load(Ordering::Relaxed) - before) as f64 / started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        handle.join().expect("the writer thread panicked");
        (result, rate)
    })
}

const READS: [(&str, Read); 10] = [
    ("accessor/load", Fixture::accessor_load),
    ("accessor/load+field", Fixture::accessor_field),
    ("accessor/cached+field", Fixture::cached_field),
    ("dynamic-config/current", Fixture::peer_current),
    ("dynamic-config/current+field", Fixture::peer_field),
    ("arcswap/load", Fixture::arcswap_load),
    ("arcswap/load+field", Fixture::arcswap_field),
    ("rwlock/read+clone", Fixture::rwlock_clone),
    ("rwlock/read+clone+field", Fixture::rwlock_field),
    ("accessor/cell+field", Fixture::cell_field),
];

const CONTENDED: [(&str, Read, Writer); 8] = [
    (
        "accessor/load",
        Fixture::accessor_load,
        Fixture::accessor_writer,
    ),
    (
        "accessor/load+field",
        Fixture::accessor_field,
        Fixture::accessor_writer,
    ),
    (
        "accessor/cached+field",
        Fixture::cached_field,
        Fixture::accessor_writer,
    ),
    (
        "dynamic-config/current+field",
        Fixture::peer_field,
        Fixture::peer_writer,
    ),
    (
        "arcswap/load",
        Fixture::arcswap_load,
        Fixture::arcswap_writer,
    ),
    (
        "rwlock/read+clone",
        Fixture::rwlock_clone,
        Fixture::rwlock_writer,
    ),
    (
        "rwlock/read+clone (paced writer)",
        Fixture::rwlock_clone,
        Fixture::rwlock_paced_writer,
    ),
    (
        "accessor/cell+field",
        Fixture::cell_field,
        Fixture::accessor_writer,
    ),
];

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
}

fn criterion_groups(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("read");
    configure(&mut group);
    for (name, read) in READS {
        group.bench_function(name, |b| b.iter(|| read(fixture)));
    }
    group.finish();

    let mut group = c.benchmark_group("read_under_writer");
    configure(&mut group);
    for (name, read, writer) in CONTENDED {
        with_writer(fixture, writer, || {
            group.bench_function(name, |b| b.iter(|| read(fixture)));
        });
    }
    group.finish();
}

// --- the ratio summary ----------------------------------------------------------------

const ROUNDS: usize = 31;
const SAMPLE: Duration = Duration::from_millis(8);

/// Nanoseconds per call of `read`, over one sample of about `SAMPLE`.
fn ns_per_read(fixture: &Fixture, read: Read) -> f64 {
    const BATCH: u64 = 1000;
    let started = Instant::now();
    let mut calls = 0;
    loop {
        for _ in 0..BATCH {
            read(fixture);
        }
        calls += BATCH;
        let elapsed = started.elapsed();
        if elapsed >= SAMPLE {
            return elapsed.as_nanos() as f64 / calls as f64;
        }
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Measures every variant in interleaved rounds (so that a slow spell of the machine
/// hits all of them alike), and prints the medians and the ratios.
fn ratio_summary(fixture: &Fixture) {
    let mut alone = vec![Vec::new(); READS.len()];
    let mut contended = vec![Vec::new(); CONTENDED.len()];
    let mut rates = vec![Vec::new(); CONTENDED.len()];
    for _ in 0..ROUNDS {
        for (i, (_, read)) in READS.iter().enumerate() {
            alone[i].push(ns_per_read(fixture, *read));
        }
        for (i, (_, read, writer)) in CONTENDED.iter().enumerate() {
            let (ns, rate) = with_writer(fixture, *writer, || ns_per_read(fixture, *read));
            contended[i].push(ns);
            rates[i].push(rate);
        }
    }
    let alone: Vec<f64> = alone.into_iter().map(median).collect();
    let contended: Vec<f64> = contended.into_iter().map(median).collect();
    let rates: Vec<f64> = rates.into_iter().map(median).collect();

    println!();
    println!("summary: medians of {ROUNDS} interleaved rounds of {SAMPLE:?} each");
    for ((name, _), ns) in READS.iter().zip(&alone) {
        println!("  alone         {name:<33} {ns:>9.2} ns");
    }
    for (((name, _, _), ns), rate) in CONTENDED.iter().zip(&contended).zip(&rates) {
        println!(
            "  under writer  {name:<33} {ns:>9.2} ns   (writer: {:.0} publishes/s)",
            rate
        );
    }
    let verdict = |ratio: f64, target: f64| if ratio <= target { "ok" } else { "MISSED" };
    let load = alone[0] / alone[5];
    println!(
        "ratio load/arcswap = {load:.2} (target <= 1.2) {}",
        verdict(load, 1.2)
    );
    let under = contended[0] / contended[5];
    println!(
        "ratio load/rwlock-read+clone under writer = {under:.2} (target <= 0.3) {}",
        verdict(under, 0.3)
    );
    let paced = format!("ratio load/rwlock-read+clone under writer paced to {PACED_RATE}/s");
    // The ratios without a target, for the record.
    let informative: [(&str, f64); 9] = [
        ("ratio load+field/arcswap+field", alone[1] / alone[6]),
        (
            "ratio load/arcswap under writer",
            contended[0] / contended[4],
        ),
        (&paced, contended[0] / contended[6]),
        ("ratio load/rwlock-read+clone alone", alone[0] / alone[7]),
        (
            "ratio load+field/dynamic-config current+field",
            alone[1] / alone[4],
        ),
        (
            "ratio cached+field/dynamic-config current+field",
            alone[2] / alone[4],
        ),
        (
            "ratio cell+field/dynamic-config current+field",
            alone[9] / alone[4],
        ),
        (
            "ratio cell+field/dynamic-config current+field, each under its own writer",
            contended[7] / contended[3],
        ),
        (
            "ratio load+field/dynamic-config current+field, each under its own writer",
            contended[1] / contended[3],
        ),
    ];
    for (name, ratio) in informative {
        println!("{name} = {ratio:.2} (no target; instructions: callgrind.sh)");
    }
}

/// Whether this run measures (`cargo bench`) rather than checks that each bench runs
/// once (`cargo test --benches`, or `-- --test`), as criterion decides it.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

fn main() {
    let fixture = Fixture::new();
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c, &fixture);
    c.final_summary();
    if measuring() {
        ratio_summary(&fixture);
    }
    // The writers left everything as it started.
    assert_eq!(
        fixture.accessor.load().section::<Limits>().max_body_bytes,
        1024
    );
    assert_eq!(
        fixture
            .accessor
            .load()
            .section::<Limits>()
            .request_timeout_ms,
        5000
    );
    assert_eq!(fixture.swap.load().version, 1);
    assert_eq!(PeerLimits::current().max_body_bytes, 1024);
}
