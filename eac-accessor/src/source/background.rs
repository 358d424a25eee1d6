//! What a source that fetches in the background (a remote document, an etcd prefix)
//! keeps about itself: its [`SourceStatus`], its metrics and what its last-good cache
//! holds — one piece for every such source, so that each says the same things the same
//! way.
//!
//! The metrics, per source, labelled `source="<name>"` (the name of its status):
//! `eac_source_up`, `eac_source_serving_cache`,
//! `eac_source_last_success_timestamp_seconds`, `eac_source_requests_total{result}`
//! (`modified`, `not_modified`, `error`) and `eac_source_rejected_total` (documents
//! rejected).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::format::Format;
use super::last_good::LastGood;
use super::status::SourceStatus;
use crate::error::{Error, Errors};

/// What only one kind of source knows, in its status (an HTTP status, a revision).
pub(crate) type Details = BTreeMap<String, serde_json::Value>;

/// What a successful fetch found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Something new: served once a reload has committed it.
    Modified,
    /// Nothing new since the last fetch.
    NotModified,
    /// The very document served now, which may have come from the last-good cache:
    /// nothing new, and what is served is the source's own again.
    Served,
}

/// One background source's status, metrics and last-good cache state, behind its own
/// lock: a source may call it while holding its own state, never the other way round.
pub(crate) struct Background {
    state: Mutex<State>,
}

struct State {
    status: SourceStatus,
    /// The checksum of what the cache file holds, as far as this process knows.
    cached: Option<u64>,
}

impl Background {
    /// A source of `kind` named `name` (as errors and metrics show it), not reached yet.
    pub(crate) fn new(kind: &'static str, name: impl Into<String>) -> Background {
        Background {
            state: Mutex::new(State {
                status: SourceStatus::new(kind, name),
                cached: None,
            }),
        }
    }

    /// The status as it is now.
    pub(crate) fn status(&self) -> SourceStatus {
        self.lock().status.clone()
    }

    /// A request was sent, or a watch event received.
    pub(crate) fn asked(&self) {
        self.lock().status.last_fetch = Some(SystemTime::now());
    }

    /// The source answered with what it `found`; `details` adds what only its kind knows.
    pub(crate) fn answered(&self, found: Found, details: impl FnOnce(&mut Details)) {
        let mut state = self.lock();
        let status = &mut state.status;
        status.up = true;
        status.last_success = Some(SystemTime::now());
        status.last_error = None;
        let result = match found {
            Found::Modified => {
                status.modified += 1;
                "modified"
            }
            Found::NotModified | Found::Served => {
                status.not_modified += 1;
                "not_modified"
            }
        };
        if found == Found::Served {
            status.serving_cache = false;
        }
        // Nothing new since a rejected document: what it holds is still the rejected one.
        let still_rejected = found != Found::Modified && !status.rejection.is_empty();
        status.last_result = Some(if still_rejected { "rejected" } else { result });
        details(&mut status.details);
        record(status, Some(result));
    }

    /// The source was reached without a request of its own (a watch was opened).
    #[cfg(feature = "etcd")]
    pub(crate) fn reached(&self) {
        let mut state = self.lock();
        let status = &mut state.status;
        status.up = true;
        status.last_success = Some(SystemTime::now());
        status.last_error = None;
        record(status, None);
    }

    /// A fetch failed with `error`; `details` adds what only the source's kind knows.
    pub(crate) fn failed(&self, error: &Error, details: impl FnOnce(&mut Details)) {
        let mut state = self.lock();
        let status = &mut state.status;
        status.up = false;
        status.last_result = Some("error");
        status.last_error = Some(error.to_string());
        status.errors += 1;
        details(&mut status.details);
        record(status, Some("error"));
    }

    /// What the source returned was rejected for `errors`; `new` when that document
    /// had not been rejected before (it is counted once).
    pub(crate) fn rejected(&self, errors: &Errors, new: bool) {
        let mut state = self.lock();
        let status = &mut state.status;
        status.last_result = Some("rejected");
        status.rejection = errors.as_slice().to_vec();
        if new {
            status.rejected += 1;
            metrics::counter!("eac_source_rejected_total", "source" => status.name.clone())
                .increment(1);
        }
    }

    /// What the source returned is now served: an earlier rejection is over.
    pub(crate) fn accepted(&self) {
        let mut state = self.lock();
        state.status.rejection.clear();
        if state.status.last_result == Some("rejected") {
            state.status.last_result = Some("modified");
        }
    }

    /// Whether what is served now came from the last-good cache.
    pub(crate) fn serving_cache(&self, on: bool) {
        let mut state = self.lock();
        state.status.serving_cache = on;
        record(&state.status, None);
    }

    /// What the source's first read found was rejected (`why`, naming it): the cache
    /// is served instead.
    pub(crate) fn fell_back(&self, why: String) {
        let mut state = self.lock();
        state.status.serving_cache = true;
        state.status.last_error = Some(why);
        record(&state.status, None);
    }

    /// Changes what only the source's kind knows, outside a fetch (a revision committed).
    #[cfg(feature = "etcd")]
    pub(crate) fn details(&self, change: impl FnOnce(&mut Details)) {
        change(&mut self.lock().status.details);
    }

    /// The document `cache` holds, remembered as what it holds; `None` when there is
    /// none or it cannot be trusted (then a warning says why). Blocks on disk I/O.
    pub(crate) fn load_cache(&self, cache: &LastGood) -> Option<(Format, String)> {
        let (format, text) = cache.load()?;
        self.lock().cached = Some(text_hash(&text));
        Some((format, text))
    }

    /// Writes `text` to `cache`, unless it holds that already; a failure is warned of
    /// and said in the status's `cache_error` until a write succeeds. Blocks on disk I/O.
    pub(crate) fn store_cache(&self, cache: &LastGood, format: Format, text: &str) {
        let hash = text_hash(text);
        if self.lock().cached == Some(hash) {
            return;
        }
        let stored = cache.store(format, text);
        let mut state = self.lock();
        match stored {
            Ok(()) => {
                state.cached = Some(hash);
                state.status.details.remove("cache_error");
            }
            Err(error) => {
                tracing::warn!(source = %state.status.name, %error, "the last-good cache could not be written");
                state
                    .status
                    .details
                    .insert("cache_error".into(), error.to_string().into());
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }
}

/// The checksum that tells two documents apart.
pub(crate) fn text_hash(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// The source's metrics, after a change of `status` (and a request's `result`).
fn record(status: &SourceStatus, result: Option<&'static str>) {
    let source = status.name.clone();
    metrics::gauge!("eac_source_up", "source" => source.clone())
        .set(f64::from(u8::from(status.up)));
    metrics::gauge!("eac_source_serving_cache", "source" => source.clone())
        .set(f64::from(u8::from(status.serving_cache)));
    if let Some(at) = status.last_success {
        let at = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        metrics::gauge!("eac_source_last_success_timestamp_seconds", "source" => source.clone())
            .set(at.as_secs_f64());
    }
    if let Some(result) = result {
        metrics::counter!("eac_source_requests_total", "source" => source, "result" => result)
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn a_read_of_the_document_served_from_the_cache_ends_serving_the_cache() {
        let background = Background::new("http", "http://config.internal/app.toml");
        background.serving_cache(true);
        background.answered(Found::NotModified, |_| {});
        assert!(background.status().serving_cache, "a 304 says nothing new");
        background.answered(Found::Served, |_| {});
        let status = background.status();
        assert!(status.up && !status.serving_cache, "{status:?}");
        assert_eq!((status.modified, status.not_modified), (0, 2));
    }

    #[test]
    fn a_failure_is_kept_until_the_next_answer() {
        let background = Background::new("etcd", "etcd:/eac/app/");
        let error = Error::new(ErrorKind::Io, "no answer");
        background.failed(&error, |d| {
            d.insert("http_status".into(), 503.into());
        });
        let status = background.status();
        assert!(!status.up && status.errors == 1, "{status:?}");
        assert_eq!(status.last_result, Some("error"));
        assert_eq!(status.details["http_status"], 503);
        background.answered(Found::Modified, |_| {});
        let status = background.status();
        assert!(status.up && status.last_error.is_none(), "{status:?}");
        assert_eq!(status.last_result, Some("modified"));
    }

    #[test]
    fn the_cache_is_written_once_per_document_and_its_failure_said() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LastGood::new(dir.path().join("remote.cache"));
        let background = Background::new("http", "http://config.internal/app.toml");
        background.store_cache(&cache, Format::Json, "{}");
        assert_eq!(cache.load().map(|(_, t)| t).as_deref(), Some("{}"));
        // The same document again: not written (a file put in its place stays).
        std::fs::remove_file(cache.path()).unwrap();
        background.store_cache(&cache, Format::Json, "{}");
        assert!(cache.load().is_none());

        let blocked = LastGood::new(dir.path().join("file").join("remote.cache"));
        std::fs::write(dir.path().join("file"), "not a folder").unwrap();
        background.store_cache(&blocked, Format::Json, r#"{"a": 1}"#);
        assert!(background.status().details.contains_key("cache_error"));
        background.store_cache(&cache, Format::Json, r#"{"a": 1}"#);
        assert!(!background.status().details.contains_key("cache_error"));
    }
}
