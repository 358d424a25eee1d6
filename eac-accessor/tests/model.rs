//! Ordering, model-checked (issue 32, item 3): the invariants that hang on how threads
//! interleave, run under `shuttle`'s randomized and PCT schedulers against the real
//! accessor.
//!
//! - A reader sees one version across `load()`, its sections, a cell and the resolved
//!   value ([`a_reader_sees_one_version_across_load_sections_cells_and_resolved_values`]).
//! - A subscriber is told once per version that changed its section, in version order,
//!   never of a refused candidate, while writers race and others subscribe and
//!   unsubscribe ([`subscribers_are_told_once_per_version_in_order_while_writers_race`]).
//! - A rollback racing a reload never publishes a refused candidate, and the next reload
//!   still publishes what the sources say
//!   ([`a_rollback_racing_a_reload_never_publishes_a_refused_candidate`]).
//! - One publish's steps happen in an order that lets no reader see a version before
//!   the history has it, a cell ahead of `load()`, or a subscriber told before both
//!   show it ([`a_publish_makes_its_version_visible_in_order`], a focused model of
//!   `Publisher::store`, below).
//!
//! # What the scheduler sees
//!
//! Shuttle switches threads only at its own primitives. eac uses std locks, arc-swap and
//! tokio's channels, which shuttle does not see, so a call into the accessor runs as one
//! step, except where the model's own code runs inside the pipeline and yields:
//!
//! - in the resolver's build and the readiness hook: the candidate is being checked and
//!   nothing of it is stored;
//! - in an `on_change` callback: the version is stored, the cells follow it, and the
//!   subscribers are being told.
//!
//! Readers yield between every read (`load()`, each section, the resolved value, a cell's
//! load, the cell's snapshot); a subscriber yields between subscribing and unsubscribing.
//! So what is explored is every order of the readers' single reads, subscriptions, the
//! writers' calls and those points inside a publish. What is not: arc-swap's own swap
//! (left out, as dynamic-config leaves it out; arc-swap checks it itself), and the
//! instants between the history push, the store, the cells' update and the watchers'
//! send, where no user code runs (one publish's steps there run back to back): those
//! the focused model [`Order`] covers. `preview` is left out of the racing threads: it
//! asks a thread-local whether its thread is inside a publish, and shuttle's threads
//! share one OS thread.
//!
//! Writers call the accessor holding [`World::writer`], a shuttle mutex standing in for
//! eac's own writer lock, so that shuttle knows a writer paused in a hook holds it (a
//! second writer reaching eac's std lock would otherwise stop the one OS thread shuttle
//! runs on). Readers never take it. A read that blocked on a lock held by a writer
//! paused inside a publish would hang that thread for good: the [`watchdog`] turns a
//! hang into a failure, so invariant 2 (readers never wait for a writer) is checked for
//! every read made while a writer is paused there.
//!
//! Assertions that sit where eac catches panics (a hook, a callback) are written to
//! [`Log::violations`] and checked when the threads have joined; every run ends with
//! [`World::settle`], which compares what was read and told with what was published.
//!
//! # Iterations
//!
//! Each test runs `EAC_MODEL_ITERATIONS` schedules (default 1000) under each of the two
//! schedulers: a few seconds per test in a debug build. A failure prints the schedule
//! to replay with `shuttle::replay`. The longer run: `EAC_MODEL_ITERATIONS=50000 cargo
//! nextest run -p eac-accessor --test model` (BENCHMARKS.md has its figures).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use eac_accessor::resolve::{ResolveError, Resolver};
use eac_accessor::source::{Format, Memory};
use eac_accessor::{
    ContentHash, EaCAccessor, EaCSection, Errors, Event, FieldErrors, Origin, Outcome, SectionCell,
    Snapshot, Subscription,
};
use schemars::JsonSchema;
use serde::Deserialize;
use shuttle::scheduler::{PctScheduler, RandomScheduler};
use shuttle::thread::{self, yield_now};
use shuttle::{Config, Runner};

/// A `left.stamp` at or above this is refused by [`Left::validate`].
const REFUSED: u64 = 1_000;

/// The model's first section: its stamp names the candidate it came from.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Left {
    stamp: u64,
}

impl EaCSection for Left {
    const PATH: &'static str = "left";

    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.stamp >= REFUSED {
            errors.add("stamp", "refused by the model");
        }
        errors.into_result()
    }
}

/// The model's second section, changed by some candidates and not by others.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Right {
    stamp: u64,
}

impl EaCSection for Right {
    const PATH: &'static str = "right";
}

/// The resolved value: built from `right` alone, so a publish that leaves `right` as it
/// was shares the previous one.
struct Mirror(u64);

fn doc(left: u64, right: u64) -> String {
    format!(r#"{{"left": {{"stamp": {left}}}, "right": {{"stamp": {right}}}}}"#)
}

fn hash(left: u64, right: u64) -> ContentHash {
    ContentHash::of(&serde_json::json!({"left": {"stamp": left}, "right": {"stamp": right}}))
}

/// What the model's threads saw, kept outside the accessor and checked by
/// [`World::settle`] once they joined.
#[derive(Default)]
struct Log {
    /// Every version a call returned as published (version 1 from `build`): its
    /// `(left, right)` stamps.
    published: Mutex<BTreeMap<u64, (u64, u64)>>,
    /// Calls that returned an error (rejections, a rollback to a version not kept).
    rejected: AtomicU64,
    /// Every read: version, left, right, and which read.
    seen: Mutex<Vec<(u64, u64, u64, &'static str)>>,
    /// What the section watch of `left` gave: version, left.
    watched: Mutex<Vec<(u64, u64)>>,
    /// The readiness hook's verdicts, in the order it gave them: candidate version,
    /// left, accepted.
    verdicts: Mutex<Vec<(u64, u64, bool)>>,
    /// What the subscriber registered at start was told: version, old left, new left.
    told: Mutex<Vec<(u64, u64, u64)>>,
    /// What went wrong where eac catches panics (a hook, a callback).
    violations: Mutex<Vec<String>>,
    /// A left stamp the readiness hook refuses; 0 for none.
    denied: AtomicU64,
    /// The text the source holds now.
    source_text: Mutex<String>,
    /// The cell the readiness hook reads the current version from.
    cell: OnceLock<SectionCell<Left>>,
}

impl Log {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    /// The readiness hook: yields while the candidate is checked, then refuses a denied
    /// stamp. Nothing of the candidate may be visible yet.
    fn check(&self, candidate: &Snapshot) -> Result<(), String> {
        yield_now();
        let stamp = candidate.section::<Left>().stamp;
        if let Some(cell) = self.cell.get() {
            let current = cell.load().version();
            if current + 1 != candidate.version() {
                self.violation(format!(
                    "candidate v{} checked while the cell holds v{current}: a candidate is \
                     numbered after the current version and stored only after its checks",
                    candidate.version()
                ));
            }
        }
        let accepted = self.denied.load(Ordering::SeqCst) != stamp;
        self.verdicts
            .lock()
            .unwrap()
            .push((candidate.version(), stamp, accepted));
        if accepted {
            Ok(())
        } else {
            Err(format!("left stamp {stamp} is denied"))
        }
    }

    /// Keeps what a writer's call returned.
    fn record(&self, result: &Result<Outcome, Errors>) {
        match result {
            Ok(Outcome::Published { snapshot, .. }) => {
                let stamps = (
                    snapshot.section::<Left>().stamp,
                    snapshot.section::<Right>().stamp,
                );
                let before = self
                    .published
                    .lock()
                    .unwrap()
                    .insert(snapshot.version(), stamps);
                assert!(
                    before.is_none(),
                    "version {} was published twice",
                    snapshot.version()
                );
            }
            Ok(_) => {}
            Err(_) => {
                self.rejected.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// One run's accessor, its source, and what its threads share.
struct World {
    accessor: EaCAccessor,
    source: Memory,
    left: SectionCell<Left>,
    /// Held around every writer's call: shuttle's view of eac's writer lock.
    writer: shuttle::sync::Mutex<()>,
    log: Arc<Log>,
    /// The subscriber registered at start; dropped by `settle` (its callback holds the
    /// accessor).
    subscription: Mutex<Option<Subscription>>,
    events: Mutex<tokio::sync::broadcast::Receiver<Event>>,
}

impl World {
    /// An accessor at version 1 (`left` 1, `right` 1) with the resolver, the readiness
    /// hook and a subscriber to `left`, all of which yield.
    fn new() -> Arc<World> {
        beat();
        let log = Arc::new(Log::default());
        let source = Memory::new("model", Format::Json, doc(1, 1));
        *log.source_text.lock().unwrap() = doc(1, 1);
        let hook = Arc::clone(&log);
        let accessor = EaCAccessor::builder()
            .section::<Left>()
            .section::<Right>()
            .resolver(Resolver::new("mirror", |right: &Right| {
                yield_now();
                Ok::<_, ResolveError>(Mirror(right.stamp))
            }))
            .readiness("model", move |candidate| hook.check(candidate))
            .source(source.clone())
            .build()
            .expect("version 1 is valid");
        let left = accessor.section_cell::<Left>();
        assert!(log.cell.set(left.clone()).is_ok());
        log.published.lock().unwrap().insert(1, (1, 1));

        let told = Arc::clone(&log);
        let current = accessor.clone();
        let cell = left.clone();
        let subscription = accessor.on_change::<Left, _>(move |change| {
            // Readers run while subscribers are told.
            yield_now();
            let now = current.load().version();
            if now != change.version {
                told.violation(format!(
                    "told of v{} while load() gives v{now}: subscribers are told after \
                     the version is current",
                    change.version
                ));
            }
            let in_cell = cell.load().version();
            if in_cell != change.version {
                told.violation(format!(
                    "told of v{} while the cell holds v{in_cell}",
                    change.version
                ));
            }
            told.told
                .lock()
                .unwrap()
                .push((change.version, change.old.stamp, change.new.stamp));
        });
        let events = Mutex::new(accessor.events());
        Arc::new(World {
            accessor,
            source,
            left,
            writer: shuttle::sync::Mutex::new(()),
            log,
            subscription: Mutex::new(Some(subscription)),
            events,
        })
    }

    /// A reload by one writer: `text` (if any) put in the source, then the reload
    /// under the writer lock.
    fn reload(&self, text: Option<String>) -> Result<Outcome, Errors> {
        if let Some(text) = text {
            // One step for shuttle: the source and the model's copy agree.
            self.source.set(text.as_str());
            *self.log.source_text.lock().unwrap() = text;
            yield_now();
        }
        let _writer = self.writer.lock().unwrap();
        let result = self.accessor.reload(Origin::Refresh);
        self.log.record(&result);
        result
    }

    /// A rollback by one writer, under the writer lock.
    fn rollback(&self, to: u64) -> Result<Outcome, Errors> {
        let _writer = self.writer.lock().unwrap();
        let result = self.accessor.rollback_to(to);
        self.log.record(&result);
        result
    }

    /// One unit of work as a reader writes it, yielding between every read: the whole
    /// snapshot's reads, then a cell's. `last` holds the versions this reader saw last
    /// through `load()` and through the cell.
    fn read(&self, last: &mut (u64, u64)) {
        let snapshot = self.accessor.load();
        yield_now();
        let left = snapshot.section::<Left>().stamp;
        yield_now();
        let right = snapshot.section::<Right>().stamp;
        yield_now();
        let mirror = snapshot.resolved::<Mirror>().map(|m| m.0);
        let built = snapshot.resolved_version::<Mirror>();
        yield_now();
        let version = snapshot.version();
        assert_eq!(
            mirror,
            Some(right),
            "v{version}: the resolved value was built from another version's `right`"
        );
        assert!(
            built.is_some_and(|b| b <= version),
            "v{version}: the resolved value says it was built at {built:?}"
        );
        assert!(
            version >= last.0,
            "load() went back from v{} to v{version}",
            last.0
        );
        self.log
            .seen
            .lock()
            .unwrap()
            .push((version, left, right, "load"));
        drop(snapshot);

        let cell = self.left.load();
        yield_now();
        let of_cell = cell.snapshot();
        let right = of_cell.section::<Right>().stamp;
        yield_now();
        assert_eq!(
            of_cell.section::<Left>().stamp,
            cell.stamp,
            "v{}: the cell's section is not its snapshot's",
            cell.version()
        );
        assert!(
            cell.version() >= last.1,
            "the cell went back from v{} to v{}",
            last.1,
            cell.version()
        );
        self.log
            .seen
            .lock()
            .unwrap()
            .push((cell.version(), cell.stamp, right, "cell"));
        let now = self.accessor.load().version();
        assert!(
            now >= cell.version(),
            "the cell held v{} before load() did (v{now})",
            cell.version()
        );
        *last = (version, cell.version());
    }

    /// Checks everything the threads saw against what was published; call it once they
    /// joined.
    fn settle(&self) {
        let violations = self.log.violations.lock().unwrap().clone();
        assert!(violations.is_empty(), "{violations:#?}");
        drop(self.subscription.lock().unwrap().take());
        let published = self.log.published.lock().unwrap().clone();

        // Versions count up by one from 1, and the history keeps exactly them.
        let versions: Vec<u64> = published.keys().copied().collect();
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "version numbers skipped or reused");
        let history = self.accessor.history();
        let kept: Vec<(u64, ContentHash)> = history.iter().map(|e| (e.version, e.hash)).collect();
        let want: Vec<(u64, ContentHash)> = published
            .iter()
            .map(|(&v, &(l, r))| (v, hash(l, r)))
            .collect();
        assert_eq!(kept, want, "the history is not what was published");

        // Every read was of one whole published version.
        for &(version, left, right, how) in self.log.seen.lock().unwrap().iter() {
            assert_eq!(
                published.get(&version),
                Some(&(left, right)),
                "a read through {how} saw v{version} as ({left}, {right})"
            );
        }
        for &(version, left) in self.log.watched.lock().unwrap().iter() {
            assert_eq!(
                published.get(&version).map(|p| p.0),
                Some(left),
                "the section watch gave v{version} as left {left}"
            );
        }

        // Each published version is the last candidate checked under its number, and it
        // passed; a refused candidate is never published.
        let verdicts = self.log.verdicts.lock().unwrap().clone();
        for (&version, &(left, _)) in published.range(2..) {
            let last = verdicts.iter().rev().find(|(v, _, _)| *v == version);
            assert_eq!(
                last,
                Some(&(version, left, true)),
                "v{version} was not the candidate that passed its checks"
            );
        }
        for (&version, &(left, _)) in &published {
            assert!(left < REFUSED, "v{version} is a refused candidate");
        }

        // The subscriber was told of each version that changed `left`, once, in order.
        let lefts: Vec<(u64, u64)> = published.iter().map(|(&v, &(l, _))| (v, l)).collect();
        let should: Vec<(u64, u64, u64)> = lefts
            .windows(2)
            .filter(|w| w[0].1 != w[1].1)
            .map(|w| (w[1].0, w[0].1, w[1].1))
            .collect();
        assert_eq!(
            *self.log.told.lock().unwrap(),
            should,
            "the subscriber was not told once per change, in order"
        );

        // The event stream says the same: each publish in order, each rejection.
        let mut events = self.events.lock().unwrap();
        let (mut told, mut rejected) = (Vec::new(), 0);
        while let Ok(event) = events.try_recv() {
            match event {
                Event::Published { version, .. } => told.push(version),
                Event::Rejected { .. } => rejected += 1,
                _ => {}
            }
        }
        assert_eq!(told, expected[1..], "published events");
        assert_eq!(
            rejected,
            self.log.rejected.load(Ordering::SeqCst),
            "rejected events"
        );
    }
}

/// Schedules per scheduler, from `EAC_MODEL_ITERATIONS`.
fn iterations() -> usize {
    std::env::var("EAC_MODEL_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// Runs `model` under the randomized scheduler, then under PCT (depth 3), each for
/// [`iterations`] schedules.
fn explore(model: fn()) {
    watchdog();
    let mut config = Config::new();
    // The pipeline (schema validation, deserializing) in a debug build needs more
    // than shuttle's default 60 KiB per thread.
    config.stack_size = 4 << 20;
    let n = iterations();
    let ran = Runner::new(RandomScheduler::new(n), config.clone()).run(model);
    assert_eq!(ran, n);
    let ran = Runner::new(PctScheduler::new(3, n), config).run(model);
    assert_eq!(ran, n);
}

static BEAT: AtomicU64 = AtomicU64::new(0);

/// Marks progress for the [`watchdog`]: one beat per schedule.
fn beat() {
    BEAT.fetch_add(1, Ordering::SeqCst);
}

/// Ends the process when no schedule started for 60 s: shuttle runs every thread of a
/// schedule on one OS thread, so a thread that blocks on a std lock (a reader waiting
/// for a paused writer) hangs them all, and a hang must fail, not stall CI.
fn watchdog() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            let (mut last, mut still) = (BEAT.load(Ordering::SeqCst), 0);
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = BEAT.load(Ordering::SeqCst);
                still = if now == last { still + 1 } else { 0 };
                last = now;
                if still >= 60 {
                    eprintln!(
                        "model: no schedule finished for 60 s: a thread blocked on a lock \
                         shuttle cannot see (a reader waiting for a writer?)"
                    );
                    std::process::abort();
                }
            }
        });
    });
}

/// A writer publishes, is refused, publishes a change that leaves `right` (and so the
/// resolved value) as it was, and publishes again, while two readers read whole
/// snapshots and a cell, and one of them polls a section watch: every read is of one
/// published version — `load()`'s sections, its resolved value, the cell's section and
/// the cell's snapshot — and no read goes back in time.
#[test]
fn a_reader_sees_one_version_across_load_sections_cells_and_resolved_values() {
    explore(|| {
        let world = World::new();
        let writer = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world.reload(Some(doc(2, 1))).expect("v2");
                world.reload(Some(doc(REFUSED, 2))).expect_err("refused");
                world.reload(Some(doc(3, 1))).expect("v3, right as in v2");
                world.reload(Some(doc(4, 5))).expect("v4");
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let world = Arc::clone(&world);
                thread::spawn(move || {
                    let mut watch = world.accessor.subscribe::<Left>();
                    let mut last = (0, 0);
                    for _ in 0..2 {
                        world.read(&mut last);
                        if i == 1 && watch.has_changed() {
                            let (version, left) = watch.latest();
                            world
                                .log
                                .watched
                                .lock()
                                .unwrap()
                                .push((version, left.stamp));
                        }
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for reader in readers {
            reader.join().unwrap();
        }
        world.settle();
        assert_eq!(world.accessor.load().version(), 4);
    });
}

/// Three reloads (one refused) and a rollback race, while a reader reads and one more
/// subscriber subscribes and unsubscribes: the subscriber registered at start is told
/// of each version that changed its section exactly once, in version order, never of a
/// refused candidate, and only once the version is current (checked from inside the
/// callback); the passing subscriber is told, in order, of every change published while
/// it was registered, of none published before it subscribed, and of none published
/// after it unsubscribed. (A publish that was already telling subscribers when the drop
/// returned may still call it once, for that version, which was current before the
/// drop: the model allows exactly that.)
#[test]
fn subscribers_are_told_once_per_version_in_order_while_writers_race() {
    explore(|| {
        let world = World::new();
        let mut threads = Vec::new();
        for text in [doc(2, 2), doc(REFUSED, 3), doc(3, 2)] {
            let world = Arc::clone(&world);
            threads.push(thread::spawn(move || {
                let _ = world.reload(Some(text));
            }));
        }
        {
            let world = Arc::clone(&world);
            threads.push(thread::spawn(move || {
                let _ = world.rollback(1);
            }));
        }
        {
            let world = Arc::clone(&world);
            threads.push(thread::spawn(move || {
                let mut last = (0, 0);
                world.read(&mut last);
            }));
        }
        let passing = Arc::new(Mutex::new(Vec::new()));
        let window = {
            let world = Arc::clone(&world);
            let passing = Arc::clone(&passing);
            thread::spawn(move || {
                let before = world.accessor.load().version();
                let sink = Arc::clone(&passing);
                let subscription = world.accessor.on_change::<Left, _>(move |change| {
                    sink.lock().unwrap().push(change.version);
                });
                let subscribed = world.accessor.load().version();
                yield_now();
                yield_now();
                let leaving = world.accessor.load().version();
                drop(subscription);
                let left = world.accessor.load().version();
                (before, subscribed, leaving, left)
            })
        };
        for thread in threads {
            thread.join().unwrap();
        }
        let (before, subscribed, leaving, after) = window.join().unwrap();
        world.settle();

        let passing = passing.lock().unwrap().clone();
        assert!(
            passing.windows(2).all(|w| w[0] < w[1]),
            "told out of order or twice: {passing:?}"
        );
        assert!(
            passing.iter().all(|v| (before + 1..=after).contains(v)),
            "told of {passing:?} outside v{before}..=v{after}, while it was not subscribed"
        );
        let published = world.log.published.lock().unwrap().clone();
        for version in subscribed + 1..=leaving {
            let changed = published[&(version - 1)].0 != published[&version].0;
            assert!(
                !changed || passing.contains(&version),
                "v{version} changed `left` while subscribed (v{subscribed}..=v{leaving}) \
                 and was not told: {passing:?}"
            );
        }
    });
}

/// A refused candidate, a valid one and two rollbacks to version 1 race; one thread
/// denies version 1's content in the readiness hook before its rollback: every version
/// published passed every check when it was published (the rollback re-runs them), the
/// rollback that starts after the denial never publishes, and a reload after it all
/// publishes what the source holds — a rollback does not make the next reload think
/// nothing changed.
#[test]
fn a_rollback_racing_a_reload_never_publishes_a_refused_candidate() {
    explore(|| {
        let world = World::new();
        let mut threads = Vec::new();
        for text in [doc(REFUSED, 3), doc(5, 5)] {
            let world = Arc::clone(&world);
            threads.push(thread::spawn(move || {
                let _ = world.reload(Some(text));
            }));
        }
        {
            let world = Arc::clone(&world);
            threads.push(thread::spawn(move || {
                let _ = world.rollback(1);
            }));
        }
        let denier = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                world.log.denied.store(1, Ordering::SeqCst);
                yield_now();
                world.rollback(1)
            })
        };
        {
            let world = Arc::clone(&world);
            threads.push(thread::spawn(move || {
                let mut last = (0, 0);
                world.read(&mut last);
                world.read(&mut last);
            }));
        }
        for thread in threads {
            thread.join().unwrap();
        }
        // Already current, or refused: never published.
        if let Ok(Outcome::Published { snapshot, .. }) = denier.join().unwrap() {
            panic!(
                "v{}: a rollback to denied content was published",
                snapshot.version()
            );
        }

        // The reload after it all publishes what the source holds, when it is valid.
        let final_reload = world.reload(None);
        let text = world.log.source_text.lock().unwrap().clone();
        let served = world.accessor.load();
        if text == doc(5, 5) {
            assert!(final_reload.is_ok(), "{final_reload:?}");
            assert_eq!(
                served.section::<Left>().stamp,
                5,
                "v{}: the source says left 5 and a reload did not publish it ({final_reload:?})",
                served.version()
            );
        } else {
            assert!(final_reload.is_err(), "a refused candidate passed");
        }
        drop(served);
        world.settle();
    });
}

/// A focused model of the order in which one publish makes its version visible:
/// `Publisher::store` (`eac-accessor/src/publish/mod.rs`) under the writer lock of
/// `Publisher::write` — the history push, the store, each cell's follow, the watchers'
/// send, then the callbacks. Here each step is a shuttle step, so readers and a second
/// writer run between any two of them, which the real accessor does not let shuttle
/// see. The `ArcSwap` and the cell are stand-ins (a shuttle `RwLock` over the version: a
/// load and a store, each atomic), arc-swap's own swap left out. It checks the order as
/// transcribed: the steps follow the production code's statements, one comment each, and
/// must move with them.
struct Order {
    /// `Publisher::writer`.
    writer: shuttle::sync::Mutex<()>,
    /// The versions `History` keeps.
    history: shuttle::sync::Mutex<Vec<u64>>,
    /// `Publisher::current`: what `load()` gives.
    current: shuttle::sync::RwLock<u64>,
    /// A `SectionCell`'s view.
    cell: shuttle::sync::RwLock<u64>,
    /// A `SectionWatch`'s latest version.
    watch: shuttle::sync::RwLock<u64>,
    /// What an `on_change` callback was told.
    told: shuttle::sync::Mutex<Vec<u64>>,
}

impl Order {
    fn new() -> Order {
        Order {
            writer: shuttle::sync::Mutex::new(()),
            history: shuttle::sync::Mutex::new(vec![1]),
            current: shuttle::sync::RwLock::new(1),
            cell: shuttle::sync::RwLock::new(1),
            watch: shuttle::sync::RwLock::new(1),
            told: shuttle::sync::Mutex::new(Vec::new()),
        }
    }

    /// One publish, step by step as `Publisher::reload_to` → `publish_scoped` → `store`
    /// → `notify` take them.
    fn publish(&self) {
        // `let mut last_read = self.write();`
        let _writer = self.writer.lock().unwrap();
        // `next_version(current.version ..)`, from `self.current.load_full()`.
        let version = *self.current.read().unwrap() + 1;
        // `lock(&self.history).push(&snapshot, ..)`: durable history first.
        self.history.lock().unwrap().push(version);
        // `self.current.store(Arc::clone(&snapshot))`
        *self.current.write().unwrap() = version;
        // `cell.follow(&snapshot)` for each cell.
        *self.cell.write().unwrap() = version;
        // `self.notify(..)`: `self.watchers[i].send_replace(..)`, then each callback.
        *self.watch.write().unwrap() = version;
        let seen = (*self.current.read().unwrap(), *self.cell.read().unwrap());
        assert_eq!(
            seen,
            (version, version),
            "told of v{version} while load() and the cell show {seen:?}"
        );
        self.told.lock().unwrap().push(version);
    }
}

/// Two writers publish twice each while readers compare, in both orders of reading,
/// what `load()`, the history, a cell and a watch show: a version is never visible
/// before the history keeps it, a cell never holds a version `load()` does not, a watch
/// never wakes before the cell holds its version, and the subscriber is told of each
/// version once, in order (the writer lock covers the notification).
#[test]
fn a_publish_makes_its_version_visible_in_order() {
    explore(|| {
        beat();
        let order = Arc::new(Order::new());
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let order = Arc::clone(&order);
                thread::spawn(move || {
                    order.publish();
                    order.publish();
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let order = Arc::clone(&order);
                thread::spawn(move || {
                    for _ in 0..2 {
                        let current = *order.current.read().unwrap();
                        let kept = *order.history.lock().unwrap().last().unwrap();
                        assert!(
                            kept >= current,
                            "v{current} visible, the history ends at v{kept}"
                        );
                        let cell = *order.cell.read().unwrap();
                        let current = *order.current.read().unwrap();
                        assert!(current >= cell, "the cell holds v{cell}, load() v{current}");
                        let watch = *order.watch.read().unwrap();
                        let cell = *order.cell.read().unwrap();
                        assert!(
                            cell >= watch,
                            "the watch woke for v{watch}, the cell holds v{cell}"
                        );
                    }
                })
            })
            .collect();
        for thread in writers.into_iter().chain(readers) {
            thread.join().unwrap();
        }
        assert_eq!(*order.told.lock().unwrap(), [2, 3, 4, 5]);
        assert_eq!(*order.history.lock().unwrap(), [1, 2, 3, 4, 5]);
    });
}
