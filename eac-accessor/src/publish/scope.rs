//! The first step of a publish: merge the layers, keep only what registered sections
//! own, and say which keys were left out.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::hash::ContentHash;
use crate::keys::Keys;
use crate::source::provenance::{self, Kept};
use crate::source::{self, Layer, Merged};

/// A merged candidate holding only what registered sections own, with a copy of its
/// sources' input and the unknown keys that reject it.
pub(crate) struct Scoped {
    pub(super) merged: Merged,
    /// The content hash of the candidate document, written by the walk that scoped it.
    pub(super) hash: ContentHash,
    pub(super) kept: Arc<Kept>,
    pub(super) unknown: Vec<Error>,
    /// Some inputs did not parse and were left out: the candidate is rejected, and is
    /// checked only for what the other inputs hold (not for what the missing ones would
    /// have set).
    pub(super) partial: bool,
}

impl Scoped {
    /// The candidate document: no unknown key, no `$schema`.
    pub(crate) fn document(&self) -> &Value {
        &self.merged.document
    }

    /// The content hash of [`document`](Scoped::document).
    pub(crate) fn hash(&self) -> ContentHash {
        self.hash
    }

    /// Whether an unknown key rejects the candidate.
    pub(super) fn is_rejected(&self) -> bool {
        !self.unknown.is_empty()
    }
}

/// Merges the layers and removes every key no registered section owns; each removed key
/// becomes an error unless `keys` allows it or `allow_all` (a document eac stored itself).
pub(crate) fn scope(
    layers: Vec<Layer>,
    keys: &Keys,
    allow_all: bool,
) -> Result<Scoped, Vec<Error>> {
    let kept = Arc::new(provenance::keep(&layers));
    scope_kept(layers, kept, keys, allow_all)
}

/// [`scope`], with the copy of the layers' input made already.
pub(super) fn scope_kept(
    layers: Vec<Layer>,
    kept: Arc<Kept>,
    keys: &Keys,
    allow_all: bool,
) -> Result<Scoped, Vec<Error>> {
    let (mut merged, mut unreadable) = match source::merge(layers) {
        Ok(merged) => (merged, Vec::new()),
        // Every input's errors at once: the inputs that do not parse are left out, and
        // the rest is checked too (`partial`).
        Err(errors) => {
            let failed: Vec<&SourceName> = errors.iter().filter_map(Error::source).collect();
            if failed.is_empty() {
                return Err(errors);
            }
            match source::merge(kept.layers_without(&failed)) {
                Ok(merged) => (merged, errors),
                Err(_) => return Err(errors),
            }
        }
    };
    let partial = !unreadable.is_empty();
    let (unknown, hash) = keys.scope_hashed(&mut merged.document);
    let unknown = if allow_all || unknown.is_empty() {
        Vec::new()
    } else {
        let provenance = kept.provenance();
        unknown
            .iter()
            .map(|u| {
                let error = Error::new(ErrorKind::UnknownKey, u.message()).with_key(u.shown_key());
                match provenance.source_of(&u.key) {
                    Some(source) => error.with_source(source),
                    None => error,
                }
            })
            .collect()
    };
    unreadable.extend(unknown);
    Ok(Scoped {
        merged,
        hash,
        kept,
        unknown: unreadable,
        partial,
    })
}

/// Every error in one [`Errors`]; an empty list cannot happen, but says so if it does.
pub(crate) fn into_errors(errors: Vec<Error>) -> Errors {
    Errors::from_vec(errors).unwrap_or_else(|| Error::new(ErrorKind::Parse, "unknown error").into())
}
