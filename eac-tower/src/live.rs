//! A value read from configuration for each request, shared by the live-bound middleware.

use std::sync::Arc;

use eac_accessor::{EaCAccessor, Snapshot};
use http::Request;

use crate::pin::pinned;

/// Reads a value from the snapshot pinned for a request, or, when no `EaCLayer` pinned
/// one, from the accessor's current snapshot.
pub(crate) struct LiveValue<T> {
    accessor: EaCAccessor,
    read: Arc<dyn Fn(&Snapshot) -> T + Send + Sync>,
}

impl<T> LiveValue<T> {
    pub(crate) fn new<F>(accessor: EaCAccessor, read: F) -> Self
    where
        F: Fn(&Snapshot) -> T + Send + Sync + 'static,
    {
        LiveValue {
            accessor,
            read: Arc::new(read),
        }
    }

    pub(crate) fn get<B>(&self, request: &Request<B>) -> T {
        match pinned(request) {
            Some(snapshot) => (self.read)(snapshot),
            None => (self.read)(&self.accessor.load()),
        }
    }
}

impl<T> Clone for LiveValue<T> {
    fn clone(&self) -> Self {
        LiveValue {
            accessor: self.accessor.clone(),
            read: Arc::clone(&self.read),
        }
    }
}
