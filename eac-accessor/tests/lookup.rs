//! `Snapshot::section` finds the right section however many are registered, in whatever
//! order, through the per-type lookup hint and without it; a `SectionCell`, resolved
//! once, reads the same section and follows every publish. The builders allow unknown
//! keys: each registers a subset of the sections the shared document holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, Errors, Origin, Outcome};
use schemars::JsonSchema;
use serde::Deserialize;

macro_rules! numbered {
    ($($name:ident $path:literal),*) => {
        $(
            #[derive(Deserialize, JsonSchema, EaCSection)]
            #[eac(path = $path)]
            struct $name {
                n: u64,
            }
        )*
    };
}

numbered!(
    S1 "s1", S2 "s2", S3 "s3", S4 "s4", S5 "s5", S6 "s6", S7 "s7", S8 "s8", S9 "s9",
    S10 "s10", S11 "s11", S12 "s12", S13 "s13", S14 "s14", S15 "s15", S16 "s16", S17 "s17"
);

/// A generic section: `Wrapper<A>` and `Wrapper<B>` are two sections at one path.
#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "wrapper")]
struct Wrapper<T> {
    #[serde(flatten)]
    inner: T,
}

// Both sections live at `wrapper`, so each must own both keys there: only what a
// registered section owns at a path is configuration.
#[derive(Debug, Deserialize, JsonSchema)]
struct A {
    a: u64,
    #[serde(rename = "b")]
    _b: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct B {
    b: u64,
    #[serde(rename = "a")]
    _a: u64,
}

/// Written by hand: no lookup hint, always the scan.
#[derive(Deserialize, JsonSchema)]
struct Manual {
    n: u64,
}

impl EaCSection for Manual {
    const PATH: &'static str = "manual";
}

fn document() -> String {
    let mut doc = String::new();
    for i in 1..=17 {
        doc.push_str(&format!("[s{i}]\nn = {i}\n"));
    }
    doc.push_str("[wrapper]\na = 100\nb = 200\n[manual]\nn = 300\n");
    doc
}

macro_rules! register {
    ($builder:expr, $($ty:ty),*) => {
        $builder $(.section::<$ty>())*
    };
}

/// Every section of `accessor` read back, with the value its document gives it.
fn check_all(accessor: &EaCAccessor) {
    let s = accessor.load();
    let got = [
        s.section::<S1>().n,
        s.section::<S2>().n,
        s.section::<S3>().n,
        s.section::<S4>().n,
        s.section::<S5>().n,
        s.section::<S6>().n,
        s.section::<S7>().n,
        s.section::<S8>().n,
        s.section::<S9>().n,
        s.section::<S10>().n,
        s.section::<S11>().n,
        s.section::<S12>().n,
        s.section::<S13>().n,
        s.section::<S14>().n,
        s.section::<S15>().n,
        s.section::<S16>().n,
        s.section::<S17>().n,
    ];
    assert_eq!(got.to_vec(), (1..=17).collect::<Vec<u64>>());
    assert_eq!(s.section::<Wrapper<A>>().inner.a, 100);
    assert_eq!(s.section::<Wrapper<B>>().inner.b, 200);
    assert_eq!(s.section::<Manual>().n, 300);
}

/// All twenty sections, registered in the order they are declared.
fn forward() -> Result<EaCAccessor, Errors> {
    register!(
        EaCAccessor::builder().allow_unknown_keys(true),
        S1,
        S2,
        S3,
        S4,
        S5,
        S6,
        S7,
        S8,
        S9,
        S10,
        S11,
        S12,
        S13,
        S14,
        S15,
        S16,
        S17,
        Wrapper<A>,
        Wrapper<B>,
        Manual
    )
    .source(Memory::new("m", Format::Toml, document()))
    .build()
}

/// All twenty sections, registered in the reverse order.
fn backward() -> Result<EaCAccessor, Errors> {
    register!(
        EaCAccessor::builder().allow_unknown_keys(true),
        Manual,
        Wrapper<B>,
        Wrapper<A>,
        S17,
        S16,
        S15,
        S14,
        S13,
        S12,
        S11,
        S10,
        S9,
        S8,
        S7,
        S6,
        S5,
        S4,
        S3,
        S2,
        S1
    )
    .source(Memory::new("m", Format::Toml, document()))
    .build()
}

#[test]
fn each_of_twenty_sections_is_found_including_generic_ones() -> Result<(), Errors> {
    let accessor = forward()?;
    // Twice: the first read of each type may scan, the second goes by its hint.
    check_all(&accessor);
    check_all(&accessor);
    Ok(())
}

#[test]
fn accessors_registering_in_different_orders_each_read_right() -> Result<(), Errors> {
    let forward = forward()?;
    let backward = backward()?;
    // Interleaved, so that each read finds the hint the other accessor left.
    for _ in 0..3 {
        check_all(&forward);
        check_all(&backward);
    }
    assert_eq!(backward.load().section::<S1>().n, 1);
    assert_eq!(forward.load().section::<S1>().n, 1);
    assert_eq!(backward.load().section::<S17>().n, 17);
    Ok(())
}

#[test]
fn a_section_not_registered_is_none() -> Result<(), Errors> {
    let accessor = EaCAccessor::builder()
        .allow_unknown_keys(true)
        .section::<S1>()
        .source(Memory::new("m", Format::Toml, document()))
        .build()?;
    let snapshot = accessor.load();
    assert!(snapshot.get::<S2>().is_none());
    assert!(snapshot.get::<Wrapper<A>>().is_none());
    assert!(snapshot.get::<Manual>().is_none());
    assert_eq!(snapshot.get::<S1>().map(|s| s.n), Some(1));
    Ok(())
}

/// The section of `T` in a cell's guard is the very one its snapshot holds.
fn same_as_its_snapshot<T: EaCSection>(accessor: &EaCAccessor) -> bool {
    let guard = accessor.section_cell::<T>().load();
    std::ptr::eq(&*guard, guard.snapshot().section::<T>())
        && guard.version() == guard.snapshot().version()
}

#[test]
fn a_section_cell_reads_its_own_section_among_twenty_including_generic_ones() -> Result<(), Errors>
{
    let accessor = backward()?;
    assert_eq!(accessor.section_cell::<S1>().load().n, 1);
    assert_eq!(accessor.section_cell::<S9>().load().n, 9);
    assert_eq!(accessor.section_cell::<S17>().load().n, 17);
    assert_eq!(accessor.section_cell::<Wrapper<A>>().load().inner.a, 100);
    assert_eq!(accessor.section_cell::<Wrapper<B>>().load().inner.b, 200);
    assert_eq!(accessor.section_cell::<Manual>().load().n, 300);
    assert!(same_as_its_snapshot::<S17>(&accessor));
    assert!(same_as_its_snapshot::<Wrapper<A>>(&accessor));
    assert!(same_as_its_snapshot::<Manual>(&accessor));
    Ok(())
}

#[test]
#[should_panic(expected = "section `lookup::S2` is not registered")]
fn a_cell_of_a_section_not_registered_panics_naming_it() {
    let accessor = EaCAccessor::builder()
        .allow_unknown_keys(true)
        .section::<S1>()
        .source(Memory::new("m", Format::Toml, document()))
        .build()
        .unwrap();
    let _ = accessor.section_cell::<S2>();
}

#[test]
fn a_section_cell_follows_publishes_and_rollbacks_and_keeps_a_rejected_one_out()
-> Result<(), Errors> {
    #[derive(Deserialize, JsonSchema, EaCSection)]
    #[eac(path = "limits")]
    struct Limits {
        #[schemars(range(max = 100))]
        max: u64,
    }
    let doc = Memory::new("m", Format::Toml, "[limits]\nmax = 1\n");
    let accessor = EaCAccessor::builder()
        .section::<Limits>()
        .source(doc.clone())
        .build()?;
    let cell = accessor.section_cell::<Limits>();
    let shared = cell.clone(); // clones share the one cell
    assert_eq!((cell.load().max, cell.load().version()), (1, 1));

    doc.set("[limits]\nmax = 2\n");
    assert!(matches!(
        accessor.reload(Origin::Refresh)?,
        Outcome::Published { .. }
    ));
    assert_eq!((shared.load().max, shared.load().version()), (2, 2));

    // Rejected by the schema: the cell keeps version 2, as the accessor does.
    doc.set("[limits]\nmax = 1000\n");
    assert!(accessor.reload(Origin::Refresh).is_err());
    assert_eq!((cell.load().max, cell.load().version()), (2, 2));

    accessor.rollback_to(1)?;
    let current = cell.load();
    assert_eq!((current.max, current.version()), (1, 3));
    assert_eq!(current.snapshot().version(), accessor.load().version());
    assert!(std::ptr::eq(cell.load_full().as_ref(), &*current));
    Ok(())
}

#[test]
fn a_section_cell_holds_no_version_but_the_current_one() -> Result<(), Errors> {
    let doc = Memory::new("m", Format::Toml, document());
    let accessor = EaCAccessor::builder()
        .allow_unknown_keys(true)
        .section::<S1>()
        .source(doc.clone())
        .build()?;
    let cell = accessor.section_cell::<S1>();
    let first = Arc::downgrade(cell.load().snapshot());
    let first_section = Arc::downgrade(&cell.load().to_arc());
    doc.set(document().replace("[s1]\nn = 1", "[s1]\nn = 11"));
    accessor.reload(Origin::Refresh)?;
    // Nothing reads version 1 any more: the cell let go of it with the accessor.
    assert!(first.upgrade().is_none(), "the old snapshot is still alive");
    assert!(
        first_section.upgrade().is_none(),
        "the old section is still alive"
    );
    assert_eq!(cell.load().n, 11);
    Ok(())
}

#[test]
fn a_section_cell_read_always_agrees_with_its_snapshot_under_a_continuous_writer()
-> Result<(), Errors> {
    const VERSIONS: u64 = 2000;
    let doc = Memory::new("m", Format::Toml, "[s1]\nn = 0\n[s2]\nn = 0\n");
    let accessor = EaCAccessor::builder()
        .section::<S1>()
        .section::<S2>()
        .source(doc.clone())
        .build()?;
    let done = Arc::new(AtomicBool::new(false));
    // The writer starts once every reader reads.
    let start = Arc::new(std::sync::Barrier::new(4));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (accessor, done, start) = (accessor.clone(), Arc::clone(&done), Arc::clone(&start));
            std::thread::spawn(move || {
                let cell = accessor.section_cell::<S1>();
                let mut last_version = 0;
                start.wait();
                while !done.load(Ordering::Relaxed) {
                    let s1 = cell.load();
                    // The cell never runs ahead of the accessor (read after it).
                    assert!(s1.version() <= accessor.load().version());
                    let snapshot = s1.snapshot();
                    assert!(std::ptr::eq(&*s1, snapshot.section::<S1>()));
                    // Version v carries n = v - 1 in both sections.
                    assert_eq!(s1.n + 1, s1.version(), "a section of another version");
                    assert_eq!(snapshot.section::<S2>().n, s1.n, "two versions mixed");
                    assert!(
                        s1.version() >= last_version,
                        "went back from {last_version}"
                    );
                    last_version = s1.version();
                }
            })
        })
        .collect();
    // The readers stop when the writer does, whichever way it ends.
    struct Done(Arc<AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    {
        let _done = Done(Arc::clone(&done));
        start.wait();
        for i in 1..=VERSIONS {
            doc.set(format!("[s1]\nn = {i}\n[s2]\nn = {i}\n"));
            accessor.reload(Origin::Refresh)?;
        }
    }
    for reader in readers {
        reader.join().expect("a reader's assertion failed");
    }
    let last = accessor.section_cell::<S1>().load();
    assert_eq!((last.n, last.version()), (VERSIONS, VERSIONS + 1));
    Ok(())
}
