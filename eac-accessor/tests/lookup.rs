//! `Snapshot::section` finds the right section however many are registered, in whatever
//! order, through the per-type lookup hint and without it. The builders allow unknown
//! keys: each registers a subset of the sections the shared document holds.

use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection, Errors};
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

#[test]
fn each_of_twenty_sections_is_found_including_generic_ones() -> Result<(), Errors> {
    let accessor = register!(
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
    .build()?;
    // Twice: the first read of each type may scan, the second goes by its hint.
    check_all(&accessor);
    check_all(&accessor);
    Ok(())
}

#[test]
fn accessors_registering_in_different_orders_each_read_right() -> Result<(), Errors> {
    let forward = register!(
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
    .build()?;
    let backward = register!(
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
    .build()?;
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
