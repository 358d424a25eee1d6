//! The same section, readable through eac and through each peer: shared by the timed
//! bench (`read.rs`) and the instruction-count bench (`read_count.rs`).

#![allow(dead_code)] // each bench uses its own part

use std::io::Write;
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use dynamic_config::dynamic_config;
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection};
use schemars::JsonSchema;
use serde::Deserialize;

/// The section every variant reads, as eac sees it.
#[derive(Debug, Deserialize, JsonSchema, EaCSection)]
#[eac(path = "limits")]
pub(crate) struct Limits {
    pub(crate) max_body_bytes: u64,
    pub(crate) request_timeout_ms: u64,
}

/// The same section, as dynamic-config sees it (its attribute owns the type's statics).
#[dynamic_config]
#[derive(Debug, Deserialize)]
pub(crate) struct PeerLimits {
    pub(crate) max_body_bytes: u64,
    pub(crate) request_timeout_ms: u64,
}

/// What the `ArcSwap` and `RwLock` baselines hold: a version and the section.
#[derive(Debug)]
pub(crate) struct Plain {
    pub(crate) version: u64,
    pub(crate) limits: Limits,
}

impl Plain {
    pub(crate) fn new(version: u64, max_body_bytes: u64) -> Arc<Plain> {
        Arc::new(Plain {
            version,
            limits: Limits {
                max_body_bytes,
                request_timeout_ms: 5000,
            },
        })
    }
}

pub(crate) const DOC_A: &str =
    r#"{"limits": {"max_body_bytes": 1024, "request_timeout_ms": 5000}}"#;
pub(crate) const DOC_B: &str =
    r#"{"limits": {"max_body_bytes": 2048, "request_timeout_ms": 5000}}"#;

/// An accessor on `DOC_A` with `Limits` registered, and the document to publish into it.
pub(crate) fn accessor() -> (EaCAccessor, Memory) {
    let doc = Memory::new("bench", Format::Json, DOC_A);
    let accessor = EaCAccessor::builder()
        .section::<Limits>()
        .resolver(eac_accessor::resolve::Resolver::new(
            "max body",
            |limits: &Limits| Ok(MaxBody(limits.max_body_bytes)),
        ))
        .source(doc.clone())
        .build()
        .expect("the bench document is valid");
    (accessor, doc)
}

/// What a resolver builds from `Limits`, to compare its read with a section's.
pub(crate) struct MaxBody(pub(crate) u64);

/// Nineteen other sections, registered before `Limits`.
macro_rules! others {
    ($($name:ident),*) => {
        $(
            #[derive(Deserialize, JsonSchema, EaCSection)]
            #[eac(path = "limits")]
            pub(crate) struct $name {
                pub(crate) max_body_bytes: u64,
            }
        )*
        /// An accessor on `DOC_A` with 20 sections, `Limits` registered last.
        pub(crate) fn accessor_20() -> EaCAccessor {
            EaCAccessor::builder()
                $(.section::<$name>())*
                .section::<Limits>()
                .source(Memory::new("bench", Format::Json, DOC_A))
                .build()
                .expect("the bench document is valid")
        }
    };
}
others!(
    S1, S2, S3, S4, S5, S6, S7, S8, S9, S10, S11, S12, S13, S14, S15, S16, S17, S18, S19
);

/// Installs `DOC_A` as `PeerLimits::current()`, from a file as dynamic-config reads one;
/// returns the builder (to reload with) and the folder holding the file.
pub(crate) fn peer() -> (dynamic_config::Builder<PeerLimits>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("app.json");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(DOC_A.as_bytes()))
        .expect("the bench document is written");
    let builder = PeerLimits::builder("limits").file(path.to_string_lossy().into_owned());
    builder.init().expect("the bench document is valid");
    (builder, dir)
}

pub(crate) fn arcswap() -> ArcSwap<Plain> {
    ArcSwap::new(Plain::new(1, 1024))
}

pub(crate) fn rwlock() -> RwLock<Arc<Plain>> {
    RwLock::new(Plain::new(1, 1024))
}

/// Read-lock, clone the `Arc`, unlock: what a reader of an `RwLock<Arc<T>>` does.
#[inline]
pub(crate) fn rwlock_read(lock: &RwLock<Arc<Plain>>) -> Arc<Plain> {
    Arc::clone(&lock.read().unwrap_or_else(|p| p.into_inner()))
}
