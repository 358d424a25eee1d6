//! Immutable, fully validated versions of the configuration.

use std::any::TypeId;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use serde_json::Value;

use crate::diff::redact;
use crate::error::{SourceName, dotted_to_pointer};
use crate::hash::ContentHash;
use crate::keys::Keys;
use crate::resolve::slot::{ResolvedKey, ResolvedSlot};
use crate::section::{AnySection, EaCSection};
use crate::source::provenance::Kept;

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
    /// A watched etcd prefix changed.
    Etcd {
        /// The keys the change touched (whole keys, prefix included).
        keys: Vec<String>,
        /// The cluster's revision that was read: a state the cluster really had.
        revision: i64,
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
    /// A fleet's gray release changed what this member serves: `canary <release>` when
    /// a canary applied the release's staged candidate, `abort <release>` when it went
    /// back to the prefix's configuration, `promote <release>` when the promotion wrote
    /// the candidate to the prefix.
    Release {
        /// `canary`, `abort` or `promote`.
        step: String,
        /// The release's id (under `<prefix>.releases/`).
        release: String,
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
            Origin::Etcd { keys, revision } => {
                write!(
                    f,
                    "etcd change at revision {revision} ({})",
                    keys.join(", ")
                )
            }
            Origin::Rollback { from } => write!(f, "rollback from {from}"),
            Origin::AutoRollback { from } => write!(f, "auto-rollback from {from}"),
            Origin::Release { step, release } => write!(f, "{step} {release}"),
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
    /// Every source's input, for [`Snapshot::source_of`].
    pub(crate) kept: Arc<Kept>,
    pub(crate) keys: Arc<Keys>,
    /// The resolvers' values, in registration order.
    pub(crate) resolved: Box<[ResolvedSlot]>,
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
        redact("", &self.document, &self.secrets)
    }

    /// Which source set the value at dotted `key`, and the sources it overrode; `None`
    /// when the snapshot has no value there.
    ///
    /// Sources are listed as errors name them: a file, an environment variable, a URL.
    /// Secret values read `"[redacted]"`. For a key that holds a table, every source that
    /// set something in it is listed. The answer is worked out when asked, from a copy of
    /// the sources' input kept with the snapshot: meant for operators, not for a hot path.
    ///
    /// ```
    /// use eac_accessor::source::{Env, Format, Memory};
    /// use eac_accessor::{EaCAccessor, EaCSection, SourceName};
    /// # #[derive(serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// # struct Limits { max_body_bytes: u64 }
    ///
    /// let accessor = EaCAccessor::builder()
    ///     .section::<Limits>()
    ///     .source(Memory::new("app.toml", Format::Toml, "[limits]\nmax_body_bytes = 1024\n"))
    ///     .source(Env::prefixed("APP_").vars([("APP_LIMITS__MAX_BODY_BYTES", "2048")]))
    ///     .build()?;
    ///
    /// let answer = accessor.load().source_of("limits.max_body_bytes").ok_or("not set")?;
    /// assert_eq!(answer.value, 2048);
    /// assert_eq!(answer.source, SourceName::EnvVar("APP_LIMITS__MAX_BODY_BYTES".into()));
    /// assert_eq!(answer.overridden[0].source, SourceName::Memory("app.toml".into()));
    /// assert_eq!(
    ///     answer.to_string(),
    ///     "`limits.max_body_bytes` = 2048, set by env var `APP_LIMITS__MAX_BODY_BYTES`, \
    ///      overriding 1024 from document `app.toml`"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn source_of(&self, key: &str) -> Option<KeySource> {
        let value = self.document.pointer(&dotted_to_pointer(key))?;
        let mut layers = self.kept.values_at(key);
        let (source, _) = layers.pop()?;
        let show = |v: &Value| redact(key, &self.keys.scoped_at(key, v), &self.secrets);
        Some(KeySource {
            key: key.to_owned(),
            value: show(value),
            source,
            overridden: layers
                .into_iter()
                .rev()
                .map(|(source, value)| Overridden {
                    value: show(&value),
                    source,
                })
                .collect(),
        })
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

    /// The value of type `R` a [`Resolver`](crate::resolve::Resolver) built from this
    /// version's sections, or `None` when no resolver builds an `R`.
    ///
    /// The value belongs to this snapshot's version: read the sections and the values a
    /// unit of work needs from one snapshot and they always agree.
    #[inline]
    pub fn resolved<R: Send + Sync + 'static>(&self) -> Option<&R> {
        // The downcast is the type check: one per value, no separate id compare.
        self.resolved.iter().find_map(ResolvedSlot::get)
    }

    /// The value of type `R` through a [`ResolvedKey`]: as [`resolved`](Snapshot::resolved),
    /// at the cost of a section read (the key remembers where `R` sits).
    ///
    /// ```
    /// use eac_accessor::resolve::{ResolvedKey, Resolver};
    /// use eac_accessor::source::{Format, Memory};
    /// use eac_accessor::{EaCAccessor, EaCSection};
    ///
    /// #[derive(Debug, serde::Deserialize, schemars::JsonSchema, EaCSection)]
    /// #[eac(path = "limits")]
    /// struct Limits {
    ///     max_body_bytes: u64,
    /// }
    ///
    /// struct MaxBody(u64);
    ///
    /// static MAX_BODY: ResolvedKey<MaxBody> = ResolvedKey::new();
    ///
    /// let accessor = EaCAccessor::builder()
    ///     .section::<Limits>()
    ///     .resolver(Resolver::new("max body", |l: &Limits| Ok(MaxBody(l.max_body_bytes))))
    ///     .source(Memory::new("app", Format::Toml, "[limits]\nmax_body_bytes = 5\n"))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(accessor.load().resolved_by(&MAX_BODY).map(|m| m.0), Some(5));
    /// ```
    #[inline]
    pub fn resolved_by<R: Send + Sync + 'static>(&self, key: &ResolvedKey<R>) -> Option<&R> {
        // The hint may be another accessor's: the downcast checks the type either way.
        if let Some(slot) = self.resolved.get(key.hint.load(Ordering::Relaxed))
            && let Some(value) = slot.get()
        {
            return Some(value);
        }
        self.scan_resolved(key)
    }

    /// The scan behind [`resolved_by`](Snapshot::resolved_by), when its hint missed.
    #[inline(never)]
    fn scan_resolved<R: Send + Sync + 'static>(&self, key: &ResolvedKey<R>) -> Option<&R> {
        let index = self.resolved.iter().position(|s| s.get::<R>().is_some())?;
        key.hint.store(index, Ordering::Relaxed);
        self.resolved[index].get()
    }

    /// The version whose sections built this snapshot's `R` (older than
    /// [`version`](Snapshot::version) when its sections have not changed since).
    pub fn resolved_version<R: Send + Sync + 'static>(&self) -> Option<u64> {
        Some(self.slot(TypeId::of::<R>())?.built_at())
    }

    pub(crate) fn slot(&self, id: TypeId) -> Option<&ResolvedSlot> {
        self.resolved.iter().find(|s| s.type_id() == id)
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

/// Where a value in a snapshot came from; see [`Snapshot::source_of`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct KeySource {
    /// The dotted key asked about.
    pub key: String,
    /// Its value in the snapshot (`"[redacted]"` for a secret).
    pub value: Value,
    /// The source whose value won (the last one to set it).
    #[serde(serialize_with = "display")]
    pub source: SourceName,
    /// The sources that set the key too and lost, the most recent first.
    pub overridden: Vec<Overridden>,
}

/// A source whose value for a key another source overrode.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Overridden {
    /// The source.
    #[serde(serialize_with = "display")]
    pub source: SourceName,
    /// What it said (`"[redacted]"` for a secret).
    pub value: Value,
}

fn display<S: serde::Serializer>(source: &SourceName, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(source)
}

/// "`key` = value, set by source, overriding value from source, …".
impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` = {}, set by {}", self.key, self.value, self.source)?;
        for (i, lost) in self.overridden.iter().enumerate() {
            let lead = if i == 0 { "overriding" } else { "and" };
            write!(f, ", {lead} {} from {}", lost.value, lost.source)?;
        }
        Ok(())
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
