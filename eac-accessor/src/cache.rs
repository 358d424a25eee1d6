//! A reader that a thread keeps: the current snapshot for one pointer comparison.

use std::any::TypeId;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::ArcSwap;
use arc_swap::cache::Cache;

use crate::accessor::EaCAccessor;
use crate::publish::Publisher;
use crate::section::EaCSection;
use crate::snapshot::Snapshot;

/// A reader that keeps the last snapshot it loaded, for hot loops: while nothing was
/// published, a read is one pointer comparison.
///
/// Made by [`EaCAccessor::cached`]. Each [`load`](CachedReader::load) compares the
/// pointer it holds with the accessor's current one, and only when they differ (a new
/// version was published) loads the new snapshot, once. It is arc-swap's
/// [`Cache`](arc_swap::cache::Cache) over the accessor.
///
/// # When to use it
///
/// A loop or a long-lived task that reads configuration many times and owns its reader
/// (`&mut self`): a worker thread, a connection's task, a per-thread `thread_local!`.
/// Compared with [`EaCAccessor::load`] it skips arc-swap's debt slot on every read:
/// 11 instructions against 59 (`BENCHMARKS.md`). Inside a request that
/// `eac_tower::EaCLayer` pinned, read the pinned snapshot instead (see
/// [`SectionCell`](crate::SectionCell)'s "Which read to use where").
///
/// # When not to
///
/// - It holds the snapshot it last read until it is read again (or dropped). A reader
///   that sits idle keeps an old version — and every resolver in it — alive, against
///   "old snapshots are freed when the last reader drops them". Keep it where reads are
///   frequent; for a request that reads once, use [`EaCAccessor::load`].
/// - It needs `&mut self`, so it is not shared: one per thread or task. Cloning one is
///   cheap.
///
/// # Consistency
///
/// As with [`EaCAccessor::load`], read everything one unit of work needs from one
/// `load()`: two loads may straddle a publish. Keep the `&Arc<Snapshot>` (or clone the
/// `Arc`) for the unit of work.
///
/// ```
/// # use eac_accessor::{EaCAccessor, EaCSection, Origin, source::{Memory, Format}};
/// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Limits { max_body_bytes: u64 }
/// # impl EaCSection for Limits { const PATH: &'static str = "limits"; }
/// let doc = Memory::new("app", Format::Toml, "[limits]\nmax_body_bytes = 10\n");
/// let accessor = EaCAccessor::builder().section::<Limits>().source(doc.clone()).build()?;
///
/// let mut reader = accessor.cached();
/// let mut total = 0;
/// for _ in 0..1000 {
///     let snapshot = reader.load(); // one pointer comparison while nothing changed
///     total += snapshot.section::<Limits>().max_body_bytes;
/// }
/// assert_eq!(total, 10_000);
///
/// doc.set("[limits]\nmax_body_bytes = 20\n");
/// accessor.reload(Origin::Refresh)?;
/// assert_eq!(reader.load().section::<Limits>().max_body_bytes, 20); // the next read sees it
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
#[derive(Clone)]
pub struct CachedReader {
    cache: Cache<Current, Arc<Snapshot>>,
}

/// The accessor's slot, as arc-swap's `Cache` wants it: something that derefs to it.
#[derive(Clone)]
struct Current(Arc<Publisher>);

impl Deref for Current {
    type Target = ArcSwap<Snapshot>;

    #[inline]
    fn deref(&self) -> &ArcSwap<Snapshot> {
        &self.0.current
    }
}

impl CachedReader {
    /// The current snapshot: the one held when nothing was published since the last
    /// read, else the new one (loaded once, and held from then on).
    #[inline]
    pub fn load(&mut self) -> &Arc<Snapshot> {
        self.cache.load()
    }
}

impl EaCAccessor {
    /// A reader for hot loops that keeps the last snapshot it read: see [`CachedReader`]
    /// for when to use it, and when not.
    pub fn cached(&self) -> CachedReader {
        CachedReader {
            cache: Cache::new(Current(Arc::clone(&self.publisher))),
        }
    }

    /// A reader of the section `T` for hot loops, that keeps the last `T` it read: see
    /// [`CachedSection`] for when to use it, and when not.
    ///
    /// # Panics
    ///
    /// When `T` was not registered with `EaCAccessor::builder().section::<T>()`.
    pub fn cached_section<T: EaCSection>(&self) -> CachedSection<T> {
        let mut reader = self.cached();
        let snapshot = Arc::clone(reader.load());
        CachedSection {
            section: section_of(&snapshot),
            snapshot,
            reader,
        }
    }
}

/// A reader of one section that keeps the section it last read: while nothing was
/// published, a read is one pointer comparison and no lookup.
///
/// A read of a field costs 14 instructions, against 57 through a
/// [`SectionCell`](crate::SectionCell) and 86 through `load().section::<T>()`
/// (`BENCHMARKS.md`; the table in `SectionCell`'s docs says which read goes where).
///
/// Made by [`EaCAccessor::cached_section`]. Everything said of [`CachedReader`] holds
/// (it keeps the last snapshot until read again; one per thread or task), and one
/// more thing: it reads **one** section. Two `CachedSection`s of two sections may each
/// see a different version; a unit of work that reads several sections takes them from
/// one snapshot ([`CachedReader::load`]).
///
/// ```
/// # use eac_accessor::{EaCAccessor, EaCSection, Origin, source::{Memory, Format}};
/// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Limits { max_body_bytes: u64 }
/// # impl EaCSection for Limits { const PATH: &'static str = "limits"; }
/// let doc = Memory::new("app", Format::Toml, "[limits]\nmax_body_bytes = 10\n");
/// let accessor = EaCAccessor::builder().section::<Limits>().source(doc.clone()).build()?;
///
/// let mut limits = accessor.cached_section::<Limits>();
/// assert_eq!(limits.load().max_body_bytes, 10);
///
/// doc.set("[limits]\nmax_body_bytes = 20\n");
/// accessor.reload(Origin::Refresh)?;
/// assert_eq!(limits.load().max_body_bytes, 20);
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
pub struct CachedSection<T> {
    reader: CachedReader,
    /// The section of `snapshot`, which is the snapshot `reader` held at the last read.
    snapshot: Arc<Snapshot>,
    section: Arc<T>,
}

impl<T: EaCSection> CachedSection<T> {
    /// The section, from the current snapshot: the one held when nothing was published
    /// since the last read, else the new one's (looked up once, and held from then on).
    #[inline]
    pub fn load(&mut self) -> &T {
        let current = self.reader.load();
        if !Arc::ptr_eq(current, &self.snapshot) {
            self.section = section_of(current);
            self.snapshot = Arc::clone(current);
        }
        &self.section
    }
}

impl<T> Clone for CachedSection<T> {
    fn clone(&self) -> Self {
        CachedSection {
            reader: self.reader.clone(),
            snapshot: Arc::clone(&self.snapshot),
            section: Arc::clone(&self.section),
        }
    }
}

/// The section `T` of `snapshot`, as an `Arc` of its own.
#[cold]
fn section_of<T: EaCSection>(snapshot: &Snapshot) -> Arc<T> {
    let id = TypeId::of::<T>();
    snapshot
        .sections
        .iter()
        .find(|(t, _, _)| *t == id)
        .and_then(|(_, _, section)| Arc::clone(section).downcast().ok())
        .unwrap_or_else(|| {
            panic!(
                "section `{}` is not registered: add `.section::<{0}>()` to the EaCAccessor builder",
                std::any::type_name::<T>()
            )
        })
}

impl<T> fmt::Debug for CachedSection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedSection")
            .field("section", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CachedReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedReader").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Format, Memory};
    use crate::{Errors, Origin};

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Limits {
        max: u64,
    }

    impl EaCSection for Limits {
        const PATH: &'static str = "limits";
    }

    /// An accessor on `[limits] max = 1`, and the document to change it.
    fn limits_at_one() -> Result<(EaCAccessor, Memory), Errors> {
        let doc = Memory::new("m", Format::Toml, "[limits]\nmax = 1\n");
        let accessor = EaCAccessor::builder()
            .section::<Limits>()
            .source(doc.clone())
            .build()?;
        Ok((accessor, doc))
    }

    #[test]
    fn a_cached_reader_sees_a_new_version_on_its_next_read() -> Result<(), Errors> {
        let (accessor, doc) = limits_at_one()?;
        let mut reader = accessor.cached();
        let first = Arc::clone(reader.load());
        assert_eq!((first.version(), first.section::<Limits>().max), (1, 1));
        // Nothing published: the very same snapshot.
        assert!(Arc::ptr_eq(reader.load(), &first));

        doc.set("[limits]\nmax = 2\n");
        assert!(accessor.reload(Origin::Refresh)?.is_published());
        let second = reader.load();
        assert_eq!((second.version(), second.section::<Limits>().max), (2, 2));
        assert!(Arc::ptr_eq(second, &accessor.load_full()));
        Ok(())
    }

    #[test]
    fn a_cached_section_sees_a_new_version_on_its_next_read() -> Result<(), Errors> {
        let (accessor, doc) = limits_at_one()?;
        let mut limits = accessor.cached_section::<Limits>();
        assert_eq!(limits.load().max, 1);
        doc.set("[limits]\nmax = 2\n");
        accessor.reload(Origin::Refresh)?;
        assert_eq!(limits.load().max, 2);
        Ok(())
    }

    #[test]
    fn a_cached_reader_drops_the_old_snapshot_once_it_reads_the_new_one() -> Result<(), Errors> {
        let (accessor, doc) = limits_at_one()?;
        let mut reader = accessor.cached();
        let old = Arc::downgrade(reader.load());
        doc.set("[limits]\nmax = 2\n");
        accessor.reload(Origin::Refresh)?;
        reader.load();
        // History keeps its own record, not the snapshot: nothing else holds version 1.
        assert!(old.upgrade().is_none(), "the reader still holds version 1");
        Ok(())
    }
}
