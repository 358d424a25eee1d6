//! Reads under a writer paced to a steady publish rate (issue 33, target 5): one reader
//! thread times reads while one writer thread publishes a changed document 50,000 times
//! a second, for eac (`reload` of the document, alternately two values), dynamic-config
//! 0.10 (its own `reload` of the same document, alternately two overrides) and a bare
//! `ArcSwap` (a `store` of one of two `Arc`s: the floor).
//!
//! ```text
//! cargo bench -p eac-accessor --bench paced
//! EAC_PACED_RATE=10000 EAC_PACED_WAIT=yield cargo bench -p eac-accessor --bench paced
//! ```
//!
//! Every variant is measured in each round, in turn (so a slow spell of the machine hits
//! all of them alike); the figures are medians over the rounds and the ratios are taken
//! from them, in one run. Beside the wall-clock time per read, each line says where the
//! reader's time went (from `/proc/thread-self/schedstat`: time on a core, time waiting
//! for one), the rate the writer reached, and the CPU time per second of the writer and
//! of eac's `eac-reclaim` thread, when there is one.
//!
//! Knobs (environment): `EAC_PACED_RATE` publishes per second (default 50000);
//! `EAC_PACED_WAIT` how the writer waits between publishes, `spin` (default: it keeps its
//! core, so any third thread takes its time from the reader's, as on a service whose
//! other threads are busy) or `yield`; `EAC_PACED_HISTORY` the accessor's
//! `history_limit` (default 10; a limit above the run's publishes evicts nothing);
//! `EAC_PACED_ROUNDS` (default 21) and `EAC_PACED_SAMPLE_MS` (default 20).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, Origin, SectionCell};

mod peers;
use peers::{DOC_A, DOC_B, Limits, PeerLimits, Plain};

/// What each variant reads and publishes into.
struct Fixture {
    accessor: EaCAccessor,
    cell: SectionCell<Limits>,
    doc: Memory,
    texts: [Arc<str>; 2],
    peer: dynamic_config::Builder<PeerLimits>,
    _peer_dir: tempfile::TempDir,
    swap: ArcSwap<Plain>,
    plains: [Arc<Plain>; 2],
}

impl Fixture {
    fn new(history: usize) -> Fixture {
        let doc = Memory::new("bench", Format::Json, DOC_A);
        // As `peers::accessor()`, with the history limit of this run.
        let accessor = EaCAccessor::builder()
            .section::<Limits>()
            .resolver(eac_accessor::resolve::Resolver::new(
                "max body",
                |limits: &Limits| Ok(peers::MaxBody(limits.max_body_bytes)),
            ))
            .history_limit(history)
            .source(doc.clone())
            .build()
            .expect("the bench document is valid");
        let (peer, _peer_dir) = peers::peer();
        Fixture {
            cell: accessor.section_cell(),
            accessor,
            doc,
            texts: [DOC_B.into(), DOC_A.into()],
            peer,
            _peer_dir,
            swap: peers::arcswap(),
            plains: [Plain::new(2, 2048), Plain::new(1, 1024)],
        }
    }

    // --- reads ------------------------------------------------------------------------

    fn eac_field(&self) -> u64 {
        self.accessor.load().section::<Limits>().max_body_bytes
    }

    /// Through a `SectionCell`: the fast path a user reaches for.
    fn cell_field(&self) -> u64 {
        self.cell.load().max_body_bytes
    }

    fn peer_field(&self) -> u64 {
        PeerLimits::current().max_body_bytes
    }

    fn arcswap_field(&self) -> u64 {
        self.swap.load().limits.max_body_bytes
    }

    // --- publishes: the `i`th changes the value; an even count leaves the first one ---

    fn eac_publish(&self, i: u64) {
        self.doc.set(Arc::clone(&self.texts[(i % 2) as usize]));
        let outcome = self
            .accessor
            .reload(Origin::Refresh)
            .expect("both bench documents are valid");
        assert!(outcome.is_published(), "the two documents differ");
    }

    fn peer_publish(&self, i: u64) {
        let value = [2048u64, 1024][(i % 2) as usize];
        PeerLimits::set_override("max_body_bytes", value).expect("an override");
        self.peer.reload().expect("the bench document is valid");
    }

    fn arcswap_publish(&self, i: u64) {
        self.swap.store(Arc::clone(&self.plains[(i % 2) as usize]));
    }
}

type Read = fn(&Fixture) -> u64;
type Publish = fn(&Fixture, u64);

/// The variants: name, read, what its writer publishes with.
const VARIANTS: [(&str, Read, Publish); 4] = [
    (
        "eac load().section()+field",
        Fixture::eac_field,
        Fixture::eac_publish,
    ),
    (
        "eac SectionCell+field",
        Fixture::cell_field,
        Fixture::eac_publish,
    ),
    (
        "dynamic-config current()+field",
        Fixture::peer_field,
        Fixture::peer_publish,
    ),
    (
        "ArcSwap load+field (floor)",
        Fixture::arcswap_field,
        Fixture::arcswap_publish,
    ),
];

/// How the writer waits for its next publish.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Wait {
    Spin,
    Yield,
}

struct Settings {
    rate: u32,
    wait: Wait,
    history: usize,
    rounds: usize,
    sample: Duration,
}

impl Settings {
    fn from_env(measuring: bool) -> Settings {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
                Err(_) => default,
            }
        }
        let wait = match std::env::var("EAC_PACED_WAIT").as_deref() {
            Ok("yield") => Wait::Yield,
            Ok("spin") | Err(_) => Wait::Spin,
            Ok(other) => panic!("EAC_PACED_WAIT={other}: spin or yield"),
        };
        let (rounds, sample) = if measuring { (21, 20) } else { (1, 2) };
        Settings {
            rate: var("EAC_PACED_RATE", 50_000),
            wait,
            history: var("EAC_PACED_HISTORY", 10),
            rounds: var("EAC_PACED_ROUNDS", rounds),
            sample: Duration::from_millis(var("EAC_PACED_SAMPLE_MS", sample)),
        }
    }
}

// --- scheduler figures from /proc ------------------------------------------------------

/// A thread's time on a core and time waiting for one (run queue), in nanoseconds, from
/// its `schedstat`; zeros where the kernel does not say.
#[derive(Clone, Copy, Default)]
struct Sched {
    run: u64,
    wait: u64,
}

impl Sched {
    fn read(path: &str) -> Sched {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut fields = text.split_whitespace().map(|f| f.parse().unwrap_or(0));
        Sched {
            run: fields.next().unwrap_or(0),
            wait: fields.next().unwrap_or(0),
        }
    }

    fn this_thread() -> Sched {
        Sched::read("/proc/thread-self/schedstat")
    }

    fn since(self, before: Sched) -> Sched {
        Sched {
            run: self.run.saturating_sub(before.run),
            wait: self.wait.saturating_sub(before.wait),
        }
    }
}

/// The `schedstat` path of eac's background reclaiming thread, once it runs.
fn reclaim_thread() -> Option<String> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .map(|task| task.path())
        .find(|task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|c| c.trim() == "eac-reclaim")
        })
        .map(|task| task.join("schedstat").to_string_lossy().into_owned())
}

// --- one sample ------------------------------------------------------------------------

/// What one sample of a variant measured.
#[derive(Clone, Copy, Default)]
struct Sample {
    /// Wall-clock nanoseconds per read.
    ns: f64,
    /// Nanoseconds per read on a core (the reader's run time over its reads).
    on_core_ns: f64,
    /// Share of the sample the reader waited for a core.
    reader_waited: f64,
    /// Publishes per second the writer reached.
    rate: f64,
    /// The writer's CPU seconds per second.
    writer_cpu: f64,
    /// The reclaiming thread's CPU seconds per second.
    reclaim_cpu: f64,
}

/// Publishes with `publish` at `settings.rate` until `stop`, counting publishes; leaves
/// the first value current. Returns the writer's scheduler figures over its run.
fn paced_writer(
    fixture: &Fixture,
    publish: Publish,
    settings: &Settings,
    stop: &AtomicBool,
    count: &AtomicU64,
) -> Sched {
    let before = Sched::this_thread();
    let period = Duration::from_secs(1) / settings.rate;
    let mut i = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        publish(fixture, i);
        i += 1;
        count.store(i, Ordering::Relaxed);
        next += period;
        let now = Instant::now();
        // Behind by more than a few periods (the writer was descheduled): start again
        // from now rather than publish in a burst.
        if now > next + 4 * period {
            next = now;
        }
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            match settings.wait {
                Wait::Spin => std::hint::spin_loop(),
                Wait::Yield => thread::yield_now(),
            }
        }
    }
    let sched = Sched::this_thread().since(before);
    if i % 2 == 1 {
        publish(fixture, i);
    }
    sched
}

/// One sample: `read` in a loop on this thread for `settings.sample` while a writer
/// publishes with `publish` (or none, for `None`).
fn sample(fixture: &Fixture, read: Read, publish: Option<Publish>, settings: &Settings) -> Sample {
    const BATCH: u64 = 1000;
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    thread::scope(|s| {
        let writer = publish.map(|publish| {
            let (stop, count) = (&stop, &count);
            s.spawn(move || paced_writer(fixture, publish, settings, stop, count))
        });
        if writer.is_some() {
            while count.load(Ordering::Relaxed) == 0 {
                thread::yield_now();
            }
        }
        let reclaim = reclaim_thread();
        let reclaim_before = reclaim.as_deref().map(Sched::read).unwrap_or_default();
        let published_before = count.load(Ordering::Relaxed);
        let sched_before = Sched::this_thread();
        let started = Instant::now();
        let mut reads = 0u64;
        let elapsed = loop {
            for _ in 0..BATCH {
                black_box(read(black_box(fixture)));
            }
            reads += BATCH;
            let elapsed = started.elapsed();
            if elapsed >= settings.sample {
                break elapsed;
            }
        };
        let reader = Sched::this_thread().since(sched_before);
        let published = count.load(Ordering::Relaxed) - published_before;
        let reclaim_cpu = reclaim
            .as_deref()
            .map(|path| Sched::read(path).since(reclaim_before).run)
            .unwrap_or(0);
        let wall = elapsed.as_nanos() as f64;
        let writer_run = writer.map(|writer| {
            let writer_started = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            let sched = writer.join().expect("the writer thread panicked");
            // The writer ran a little before and after the reads: per second of its run.
            sched.run as f64 / writer_started.as_nanos().max(1) as f64
        });
        Sample {
            ns: wall / reads as f64,
            on_core_ns: reader.run as f64 / reads as f64,
            reader_waited: reader.wait as f64 / wall,
            rate: published as f64 / elapsed.as_secs_f64(),
            writer_cpu: writer_run.unwrap_or(0.0),
            reclaim_cpu: reclaim_cpu as f64 / wall,
        }
    })
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The median of each figure over the samples.
fn medians(samples: &[Sample]) -> Sample {
    let of = |figure: fn(&Sample) -> f64| median(samples.iter().map(figure).collect());
    Sample {
        ns: of(|s| s.ns),
        on_core_ns: of(|s| s.on_core_ns),
        reader_waited: of(|s| s.reader_waited),
        rate: of(|s| s.rate),
        writer_cpu: of(|s| s.writer_cpu),
        reclaim_cpu: of(|s| s.reclaim_cpu),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether this run measures (`cargo bench`) rather than checks that the bench runs
/// (`cargo test --benches`, or `-- --test`).
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let measuring = measuring();
    let settings = Settings::from_env(measuring);
    let fixture = Fixture::new(settings.history);
    println!(
        "paced: writer at {}/s ({:?} between publishes), history_limit {}, {} rounds of {:?}; load average before {}",
        settings.rate,
        settings.wait,
        settings.history,
        settings.rounds,
        settings.sample,
        load_average()
    );
    let mut alone = vec![Vec::new(); VARIANTS.len()];
    let mut paced = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..settings.rounds {
        for (i, (_, read, publish)) in VARIANTS.iter().enumerate() {
            alone[i].push(sample(&fixture, *read, None, &settings));
            paced[i].push(sample(&fixture, *read, Some(*publish), &settings));
        }
    }
    let alone: Vec<Sample> = alone.iter().map(|s| medians(s)).collect();
    let paced: Vec<Sample> = paced.iter().map(|s| medians(s)).collect();

    println!(
        "medians of {} interleaved rounds; load average after {}",
        settings.rounds,
        load_average()
    );
    println!(
        "  {:<32} {:>8} | {:>8} {:>8} {:>7} | {:>9} {:>7} {:>8}",
        "read", "alone ns", "paced ns", "on-core", "waited", "writer/s", "writer", "reclaim"
    );
    for (((name, _, _), a), p) in VARIANTS.iter().zip(&alone).zip(&paced) {
        println!(
            "  {name:<32} {:>8.2} | {:>8.2} {:>8.2} {:>6.1}% | {:>9.0} {:>6.1}% {:>7.2}%",
            a.ns,
            p.ns,
            p.on_core_ns,
            100.0 * p.reader_waited,
            p.rate,
            100.0 * p.writer_cpu,
            100.0 * p.reclaim_cpu,
        );
    }
    let verdict = |ratio: f64, target: f64| if ratio <= target { "ok" } else { "MISSED" };
    let [eac, cell, peer, floor] = [0, 1, 2, 3].map(|i| paced[i].ns);
    let load = eac / peer;
    println!(
        "ratio eac load+field / dynamic-config current+field, paced = {load:.2} (target <= 0.7) {}",
        verdict(load, 0.7)
    );
    let cell_peer = cell / peer;
    println!(
        "ratio eac SectionCell+field / dynamic-config current+field, paced = {cell_peer:.2} (target <= 0.7) {}",
        verdict(cell_peer, 0.7)
    );
    println!(
        "ratio eac load+field / ArcSwap load+field, paced = {:.2} (no target; 1.10 on 2026-11-30)",
        eac / floor
    );
    println!(
        "ratio eac SectionCell+field / ArcSwap load+field, paced = {:.2} (no target)",
        cell / floor
    );
    println!(
        "ratio eac load+field / dynamic-config current+field, alone = {:.2} (no target)",
        alone[0].ns / alone[2].ns
    );

    // The writers left everything as it started.
    assert_eq!(fixture.eac_field(), 1024);
    assert_eq!(fixture.cell_field(), 1024);
    assert_eq!(fixture.arcswap_field(), 1024);
    PeerLimits::clear_overrides();
    fixture.peer.reload().expect("valid");
    assert_eq!(fixture.peer_field(), 1024);
}
