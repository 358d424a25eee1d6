//! The guard [`Lens::load`] returns: a value and the snapshot that keeps it alive.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::Guard;

use super::Lens;
use crate::snapshot::Snapshot;

/// A value read through a lens from a snapshot that the guard keeps alive; see
/// [`Lens::load`].
///
/// Dereferences to the value. Hold it for a short unit of work, like the guard of
/// [`EaCAccessor::load`](crate::EaCAccessor::load).
pub struct LensGuard<L> {
    snapshot: Guard<Arc<Snapshot>>,
    lens: L,
}

impl<L> LensGuard<L> {
    pub(super) fn new(snapshot: Guard<Arc<Snapshot>>, lens: L) -> LensGuard<L> {
        LensGuard { snapshot, lens }
    }

    /// The snapshot the value was read from.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl<L: Lens> Deref for LensGuard<L> {
    type Target = L::Output;

    fn deref(&self) -> &L::Output {
        self.lens.get(&self.snapshot)
    }
}

impl<L: Lens> fmt::Debug for LensGuard<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the value: it may be a secret.
        f.debug_struct("LensGuard")
            .field("key_path", &self.lens.key_path())
            .field("version", &self.snapshot.version())
            .finish_non_exhaustive()
    }
}
