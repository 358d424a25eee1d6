//! What a snapshot holds of a resolver: the built value ([`ResolvedSlot`]) and the typed
//! key that finds it fast ([`ResolvedKey`]).

use std::any::{Any, TypeId};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime};

/// The type-erased side of a resolver's value instance: being told it was replaced.
pub(crate) trait Held: Any + Send + Sync {
    fn replaced(&self);
}

/// A typed handle to the value of type `R` that a resolver builds, for the hottest
/// reads: [`Snapshot::resolved_by`](crate::Snapshot::resolved_by) costs what a section read costs, where
/// [`Snapshot::resolved`](crate::Snapshot::resolved) looks through the snapshot's values.
///
/// Declare one as a `static` (it is `const`-constructible) and share it: it only
/// remembers where `R` was last found, so one key serves any number of accessors, and a
/// stale guess costs a search, never a wrong answer.
pub struct ResolvedKey<R> {
    pub(crate) hint: AtomicUsize,
    value: PhantomData<fn() -> R>,
}

impl<R> ResolvedKey<R> {
    /// A key for the value of type `R`.
    pub const fn new() -> ResolvedKey<R> {
        ResolvedKey {
            hint: AtomicUsize::new(0),
            value: PhantomData,
        }
    }
}

impl<R> Default for ResolvedKey<R> {
    fn default() -> ResolvedKey<R> {
        ResolvedKey::new()
    }
}

impl<R> fmt::Debug for ResolvedKey<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedKey")
            .field("type", &std::any::type_name::<R>())
            .finish()
    }
}

/// A resolver's value as a snapshot holds it.
#[derive(Clone)]
pub(crate) struct ResolvedSlot {
    pub(super) type_id: TypeId,
    /// The value itself, an `R`, for reads: one downcast away. Declared before `held`
    /// so that it is dropped first: the last slot's drop leaves the instance the only
    /// owner of the value, to hand it to the drain hook.
    pub(super) value: Arc<dyn Any + Send + Sync>,
    /// Its `Instance<R>`, to mark it replaced and drain it.
    pub(super) held: Arc<dyn Held>,
    pub(super) built_at: u64,
    pub(super) took: Duration,
    pub(super) built_when: SystemTime,
}

impl ResolvedSlot {
    #[inline]
    pub(crate) fn get<R: Send + Sync + 'static>(&self) -> Option<&R> {
        self.value.downcast_ref::<R>()
    }

    pub(crate) fn type_id(&self) -> TypeId {
        self.type_id
    }

    pub(crate) fn built_at(&self) -> u64 {
        self.built_at
    }
}
