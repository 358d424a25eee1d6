//! Immutable, fully validated versions of the configuration.

use std::any::TypeId;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use serde_json::Value;

use crate::error::dotted_to_pointer;
use crate::hash::ContentHash;
use crate::section::{AnySection, EaCSection};

/// What caused a version to be published.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// The first load, in `build()`.
    Startup,
    /// An explicit reload (`reload()`, the admin endpoint).
    Refresh,
    /// A watched file changed.
    FileChange {
        /// The file whose change triggered the reload.
        path: PathBuf,
    },
    /// A signal asked for a reload (SIGHUP).
    Signal {
        /// The signal's name, such as `SIGHUP`.
        name: String,
    },
    /// A poll of a remote source found a new document.
    Poll {
        /// Where the document came from.
        url: String,
    },
    /// An operator rolled back to an earlier version.
    Rollback {
        /// The version whose content was republished.
        from: u64,
    },
    /// A failed health check rolled back automatically.
    AutoRollback {
        /// The version whose content was republished.
        from: u64,
    },
    /// Anything else, described in words.
    Other {
        /// What happened.
        reason: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Startup => f.write_str("startup"),
            Origin::Refresh => f.write_str("refresh"),
            Origin::FileChange { path } => write!(f, "file change ({})", path.display()),
            Origin::Signal { name } => write!(f, "signal ({name})"),
            Origin::Poll { url } => write!(f, "poll ({url})"),
            Origin::Rollback { from } => write!(f, "rollback from {from}"),
            Origin::AutoRollback { from } => write!(f, "auto-rollback from {from}"),
            Origin::Other { reason } => f.write_str(reason),
        }
    }
}

/// One published version of the configuration: immutable, complete and valid.
///
/// Every registered section is deserialized once, at publish; reading one is a lookup,
/// never a parse and never a lock.
///
/// # Consistency
///
/// Read everything a unit of work needs from **one** snapshot. Two calls to
/// [`EaCAccessor::load`](crate::EaCAccessor::load) may straddle a publish and mix versions:
///
/// ```
/// # use eac_accessor::{EaCAccessor, EaCSection, source::{Memory, Format}};
/// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Greeting { message: String }
/// # impl EaCSection for Greeting { const PATH: &'static str = "greeting"; }
/// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct Limits { max_body_bytes: u64 }
/// # impl EaCSection for Limits { const PATH: &'static str = "limits"; }
/// # let accessor = EaCAccessor::builder().section::<Greeting>().section::<Limits>()
/// #     .source(Memory::new("m", Format::Toml,
/// #         "[greeting]\nmessage = \"hi\"\n[limits]\nmax_body_bytes = 10\n")).build()?;
/// // Broken: a publish between the two loads pairs a new message with an old limit.
/// let message = accessor.load().section::<Greeting>().message.clone();
/// let limit = accessor.load().section::<Limits>().max_body_bytes;
///
/// // Correct: one snapshot, one version, for the whole unit of work.
/// let snapshot = accessor.load_full();
/// let message = &snapshot.section::<Greeting>().message;
/// let limit = snapshot.section::<Limits>().max_body_bytes;
/// # let _ = (message, limit);
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
pub struct Snapshot {
    pub(crate) version: u64,
    pub(crate) hash: ContentHash,
    pub(crate) published_at: SystemTime,
    pub(crate) origin: Origin,
    pub(crate) document: Arc<Value>,
    pub(crate) sections: Box<[(TypeId, &'static str, AnySection)]>,
    pub(crate) secrets: Arc<[String]>,
}

impl Snapshot {
    /// The version number: 1 for the first publish, one more for each later one.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The content hash of the merged document.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// When this version was published.
    pub fn published_at(&self) -> SystemTime {
        self.published_at
    }

    /// What caused this version.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The merged document, secrets included: do not log or serve it; see
    /// [`redacted_document`](Snapshot::redacted_document).
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The merged document with every secret field's value replaced by `"[redacted]"`.
    pub fn redacted_document(&self) -> Value {
        let mut document = Value::clone(&self.document);
        for secret in self.secrets.iter() {
            if let Some(v) = document.pointer_mut(&dotted_to_pointer(secret)) {
                *v = Value::from("[redacted]");
            }
        }
        document
    }

    /// The section `T`, or `None` when `T` was not registered on the builder.
    #[inline]
    pub fn get<T: EaCSection>(&self) -> Option<&T> {
        // The hint is shared by every accessor, so it may point at another type here
        // (another registration order): `downcast_ref` checks the type either way.
        if let Some(slot) = T::__slot()
            && let Some((_, _, section)) = self.sections.get(slot.load(Ordering::Relaxed))
            && let Some(section) = section.downcast_ref()
        {
            return Some(section);
        }
        self.scan(T::__slot())
    }

    /// The scan behind [`get`](Snapshot::get), when the hint missed or the type has
    /// none; updates the hint.
    #[inline(never)]
    fn scan<T: EaCSection>(&self, slot: Option<&AtomicUsize>) -> Option<&T> {
        let id = TypeId::of::<T>();
        let index = self.sections.iter().position(|(t, _, _)| *t == id)?;
        if let Some(slot) = slot {
            slot.store(index, Ordering::Relaxed);
        }
        self.sections[index].2.downcast_ref()
    }

    /// The section `T`.
    ///
    /// # Panics
    ///
    /// When `T` was not registered with `EaCAccessor::builder().section::<T>()`, a
    /// programming error; use [`get`](Snapshot::get) to check instead.
    #[inline]
    pub fn section<T: EaCSection>(&self) -> &T {
        match self.get() {
            Some(section) => section,
            None => not_registered::<T>(),
        }
    }
}

#[cold]
#[inline(never)]
fn not_registered<T>() -> ! {
    panic!(
        "section `{}` is not registered: add `.section::<{0}>()` to the EaCAccessor builder",
        std::any::type_name::<T>()
    )
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the document or the sections: they may hold secrets.
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("hash", &self.hash)
            .field("origin", &self.origin)
            .field(
                "sections",
                &self.sections.iter().map(|(_, p, _)| *p).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
