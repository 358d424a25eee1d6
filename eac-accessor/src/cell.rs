//! A shared handle to one section, resolved once: a read is one arc-swap load.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::section::EaCSection;
use crate::snapshot::Snapshot;

/// Something that follows the current snapshot: the accessor hands it each new
/// version right after the version becomes current.
pub(crate) trait Follow: Send + Sync {
    /// Takes `snapshot`, the new current version.
    fn follow(&self, snapshot: &Arc<Snapshot>);

    /// Itself, for [`SectionCell::of`] to find its type.
    fn as_any(&self) -> &dyn Any;
}

/// Makes the cell of a section, the `index`th registered, holding `snapshot`'s.
pub(crate) type NewCell = fn(&Arc<Snapshot>, usize) -> Box<dyn Follow>;

/// What a cell holds: one version's section and the snapshot it belongs to.
struct View<T> {
    section: Arc<T>,
    snapshot: Arc<Snapshot>,
}

/// The cell of section `T`, the `index`th registered.
struct Cell<T> {
    index: usize,
    swap: Arc<ArcSwap<View<T>>>,
}

/// `snapshot`'s section `T`, the `index`th registered, with the snapshot.
fn view<T: EaCSection>(snapshot: &Arc<Snapshot>, index: usize) -> Arc<View<T>> {
    let (_, _, section) = &snapshot.sections[index];
    let section = Arc::clone(section)
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("section {index} of a snapshot is a `T`"));
    Arc::new(View {
        section,
        snapshot: Arc::clone(snapshot),
    })
}

impl<T: EaCSection> Follow for Cell<T> {
    fn follow(&self, snapshot: &Arc<Snapshot>) {
        self.swap.store(view(snapshot, self.index));
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A [`NewCell`] for section `T`.
pub(crate) fn new_cell<T: EaCSection>(snapshot: &Arc<Snapshot>, index: usize) -> Box<dyn Follow> {
    Box::new(Cell::<T> {
        index,
        swap: Arc::new(ArcSwap::new(view(snapshot, index))),
    })
}

/// A shared handle to one section, for the read that every request pays: the lookup
/// of the section is done once, when the cell is made, so a read is one arc-swap load
/// — no search, no type check, no `dyn Any`.
///
/// Made by [`EaCAccessor::section_cell`](crate::EaCAccessor::section_cell). The accessor
/// keeps the cell up to date: every publish stores the new version's section in it,
/// right after it becomes current.
/// A [`load`](SectionCell::load) derefs to the section and knows the
/// [`snapshot`](SectionGuard::snapshot) it came from, so other sections of the same
/// version are one call away.
///
/// # Which read to use where
///
/// | where | read | instructions per read |
/// |---|---|---:|
/// | inside a request that `eac_tower::EaCLayer` pinned | the pinned snapshot: `eac_tower::Section<T>`, `Pinned`, `eac_tower::pinned(&request)` + [`Snapshot::section`](crate::Snapshot::section) | about 27: the lookup alone |
/// | outside a request: a background task, a consumer loop shared by tasks, startup | `SectionCell<T>` | 57 |
/// | anywhere, several sections of one version | [`EaCAccessor::load`](crate::EaCAccessor::load) + [`Snapshot::section`](crate::Snapshot::section) | 86 |
/// | one thread's or task's own hot loop | [`CachedSection<T>`](crate::CachedSection) | 14 |
///
/// (Callgrind, one read of one field, `BENCHMARKS.md` of 2026-12-01; dynamic-config's
/// `current()` is 68. The 27 is the general read's 86 less the 59 of its `load()`,
/// which `EaCLayer` pays once per request, not per read; finding the pinned snapshot in
/// the request's extensions, once per extractor, comes on top and is not measured.)
///
/// - **Inside a request, read what the layer pinned, not a cell.** The pinned snapshot
///   is the request's version from its first read to its last; a cell loaded in the
///   middle of a request may already hold a newer one, so the request would see two
///   versions. It is cheaper too: the load was paid once per request, and a read is
///   only the section's lookup. `eac_tower`'s docs show a middleware that does this.
/// - **`SectionCell<T>` is for code that no request pinned anything for**: the general
///   read's guarantees for one section, without its lookup. It is `Clone + Send + Sync`
///   — keep one in a task's state, share it between threads. It holds only the current
///   version, as the accessor does: an old one is freed once its last reader lets go. (A
///   cell kept after its accessor is dropped stops there: it holds the last version,
///   and nothing updates it.)
/// - **The general read** looks the section up in the snapshot (a hint, a type check)
///   on every read; it is the one to use for several sections that must be of one
///   version, outside a request.
/// - **[`CachedSection`](crate::CachedSection)**: fewer instructions still (a pointer
///   comparison while nothing changed), but owned by one thread or task (`&mut self`),
///   and it holds the version it last read until it reads again — for a loop that reads
///   often, not for a request that reads once.
///
/// # Consistency
///
/// A guard's section and its snapshot are always the same version. Two `load`s — of one
/// cell or of two — may straddle a publish: a unit of work that reads several sections
/// reads them from one guard's [`snapshot`](SectionGuard::snapshot) (or from one
/// [`EaCAccessor::load`](crate::EaCAccessor::load)). For an instant during a publish a
/// cell may still hold the version that `EaCAccessor::load` has just replaced.
///
/// ```
/// use eac_accessor::source::{Format, Memory};
/// use eac_accessor::{EaCAccessor, EaCSection, Origin};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
/// struct Limits {
///     max_body_bytes: u64,
/// }
///
/// #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
/// struct Greeting {
///     message: String,
/// }
///
/// let doc = Memory::new(
///     "app",
///     Format::Toml,
///     "[limits]\nmax_body_bytes = 10\n[greeting]\nmessage = \"hi\"\n",
/// );
/// let accessor = EaCAccessor::builder()
///     .section::<Limits>()
///     .section::<Greeting>()
///     .source(doc.clone())
///     .build()?;
///
/// let limits = accessor.section_cell::<Limits>(); // the lookup, once
/// assert_eq!(limits.load().max_body_bytes, 10); // a read: one arc-swap load
///
/// doc.set("[limits]\nmax_body_bytes = 20\n[greeting]\nmessage = \"hello\"\n");
/// accessor.reload(Origin::Refresh)?;
/// let current = limits.load();
/// assert_eq!(current.max_body_bytes, 20);
/// // The other sections of the same version, from the guard's snapshot.
/// assert_eq!(current.snapshot().section::<Greeting>().message, "hello");
/// assert_eq!(current.version(), 2);
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
pub struct SectionCell<T> {
    cell: Arc<ArcSwap<View<T>>>,
}

impl<T> Clone for SectionCell<T> {
    fn clone(&self) -> Self {
        SectionCell {
            cell: Arc::clone(&self.cell),
        }
    }
}

impl<T: EaCSection> SectionCell<T> {
    /// The handle to `cell`, when it is the cell of a `T`.
    pub(crate) fn of(cell: &dyn Follow) -> Option<SectionCell<T>> {
        let cell = cell.as_any().downcast_ref::<Cell<T>>()?;
        Some(SectionCell {
            cell: Arc::clone(&cell.swap),
        })
    }

    /// The current version of the section, as a cheap guard: one atomic load, no lock,
    /// no clone. Hold it for a short unit of work, as the guard of
    /// [`EaCAccessor::load`](crate::EaCAccessor::load).
    #[inline]
    pub fn load(&self) -> SectionGuard<T> {
        SectionGuard {
            guard: self.cell.load(),
        }
    }

    /// The current version of the section, owned, to keep across an `.await` or hand to
    /// another task.
    pub fn load_full(&self) -> Arc<T> {
        self.load().to_arc()
    }
}

impl<T> fmt::Debug for SectionCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectionCell")
            .field("section", &std::any::type_name::<T>())
            .field("version", &self.cell.load().snapshot.version())
            .finish()
    }
}

/// One version of a section, read through a [`SectionCell`]: derefs to the section.
pub struct SectionGuard<T> {
    guard: Guard<Arc<View<T>>>,
}

impl<T> SectionGuard<T> {
    /// The snapshot this section belongs to: every other section of the same version.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.guard.snapshot
    }

    /// The version this section belongs to.
    pub fn version(&self) -> u64 {
        self.guard.snapshot.version()
    }

    /// The section as an owned `Arc`.
    pub fn to_arc(&self) -> Arc<T> {
        Arc::clone(&self.guard.section)
    }
}

impl<T> Deref for SectionGuard<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.guard.section
    }
}

impl<T: fmt::Debug> fmt::Debug for SectionGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectionGuard")
            .field("version", &self.version())
            .field("section", &**self)
            .finish()
    }
}
