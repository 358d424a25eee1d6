//! What a source that fetches in the background (a remote document, an etcd prefix)
//! says about itself: reachable or not, its last fetch, serving from a cache.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// One source's state, as [`Status::sources`](crate::Status::sources) shows it.
///
/// Sources that read on demand (files, env) have none; a source that fetches in the
/// background returns one from [`Source::status`](super::Source::status). Nothing in it
/// may hold a secret: URLs have their credentials stripped, tokens never appear.
///
/// ```
/// use eac_accessor::source::SourceStatus;
///
/// let status = SourceStatus::new("http", "http://config.internal/app.toml");
/// assert!(!status.up);
/// assert_eq!(serde_json::to_value(&status)?["kind"], "http");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct SourceStatus {
    /// The kind of source: `"http"`, `"etcd"`.
    pub kind: &'static str,
    /// Its name as errors and metrics show it (a URL without credentials, `etcd:<prefix>`).
    pub name: String,
    /// Whether the last attempt to reach it succeeded.
    pub up: bool,
    /// Whether what it serves now came from its last-known-good cache, not from a fetch.
    pub serving_cache: bool,
    /// When it was last asked (a request sent, a watch event received).
    #[serde(serialize_with = "optional_unix_seconds")]
    pub last_fetch: Option<SystemTime>,
    /// When it last answered successfully.
    #[serde(serialize_with = "optional_unix_seconds")]
    pub last_success: Option<SystemTime>,
    /// The last fetch's result: `"modified"`, `"not_modified"` or `"error"`; `"rejected"`
    /// when what it fetched was rejected since.
    pub last_result: Option<&'static str>,
    /// The last error, naming the source, never a secret.
    pub last_error: Option<String>,
    /// Fetches that brought a new document.
    pub modified: u64,
    /// Fetches that found the document unchanged (an HTTP 304, an ETag hit).
    pub not_modified: u64,
    /// Fetches that failed.
    pub errors: u64,
    /// Documents it fetched that were rejected (each counted once, however many reloads
    /// read it).
    pub rejected: u64,
    /// Why what it serves now was rejected, naming each key; empty when it was accepted.
    /// A rejected input is held back (see [`Status::held_back`](crate::Status::held_back))
    /// or rejected the reload whole.
    pub rejection: Vec<crate::Error>,
    /// What only this kind of source knows (an HTTP status, an ETag, an etcd revision,
    /// the fleet of instances).
    pub details: BTreeMap<String, serde_json::Value>,
}

impl SourceStatus {
    /// A status for a source of `kind` named `name` that has not been reached yet.
    pub fn new(kind: &'static str, name: impl Into<String>) -> SourceStatus {
        SourceStatus {
            kind,
            name: name.into(),
            up: false,
            serving_cache: false,
            last_fetch: None,
            last_success: None,
            last_result: None,
            last_error: None,
            modified: 0,
            not_modified: 0,
            errors: 0,
            rejected: 0,
            rejection: Vec::new(),
            details: BTreeMap::new(),
        }
    }
}

fn optional_unix_seconds<S: serde::Serializer>(
    t: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => crate::json_time::unix_seconds(t, s),
        None => s.serialize_none(),
    }
}
