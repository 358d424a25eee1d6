//! The versions the accessor has published, and the candidates it rejected.
//!
//! The last N published versions (default 10) are kept in memory with their merged
//! documents, so that [`EaCAccessor::rollback_to`](crate::EaCAccessor::rollback_to) can
//! republish one; with [`Builder::durable_history`](crate::Builder::durable_history) they
//! are also appended to a crash-safe file and read back at the next start. Rejections
//! are kept apart, the last N of them.

mod store;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::error::{Error, Errors};
use crate::hash::ContentHash;
use crate::snapshot::{Origin, Snapshot};
pub(crate) use store::Record;
use store::Store;

/// One published version as the history keeps it.
#[derive(Clone, serde::Serialize)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The version number.
    pub version: u64,
    /// The content hash of its document.
    pub hash: ContentHash,
    /// What caused it.
    pub origin: Origin,
    /// When it was published.
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub published_at: SystemTime,
    /// The paths of the sections that changed from the version before.
    pub changed: Vec<String>,
    #[serde(skip)]
    pub(crate) document: Arc<Value>,
}

// Never the document: it holds the secrets.
impl std::fmt::Debug for HistoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryEntry")
            .field("version", &self.version)
            .field("hash", &self.hash)
            .field("origin", &self.origin)
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

/// A candidate that was rejected: when, why, and which version stayed.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Rejection {
    /// When it was rejected.
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub at: SystemTime,
    /// What caused the reload.
    pub origin: Origin,
    /// The version that stayed current.
    pub version: u64,
    /// Every problem found.
    pub errors: Vec<Error>,
}

pub(crate) struct History {
    entries: VecDeque<HistoryEntry>,
    rejections: VecDeque<Rejection>,
    limit: usize,
    store: Option<Store>,
    /// What this process serves, written into each record.
    label: Option<String>,
    state: StoreStatus,
}

/// The state of the durable history store, in the [`Status`](crate::Status).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[non_exhaustive]
pub struct StoreStatus {
    /// The store's file.
    pub path: std::path::PathBuf,
    /// The last write's error while the store is behind the history in memory; `None`
    /// when every kept version is on disk.
    pub error: Option<String>,
    /// Versions published but not on disk yet; written as soon as a write succeeds.
    pub unsaved: Vec<u64>,
    /// Failed writes since start.
    pub failures: u64,
    /// What the store's last record says it served (its config folder), when that
    /// differs from what this process serves: the state dir was moved or is shared.
    pub served_before: Option<String>,
}

impl History {
    pub(crate) fn new(limit: usize) -> History {
        History {
            entries: VecDeque::new(),
            rejections: VecDeque::new(),
            limit: limit.max(1),
            store: None,
            label: None,
            state: StoreStatus::default(),
        }
    }

    /// Opens the durable store in `dir` and loads what it holds; `label` says what this
    /// process serves (its config folder), to notice a state dir that served another.
    pub(crate) fn open(dir: &Path, limit: usize, label: Option<String>) -> Result<History, Error> {
        let mut history = History::new(limit);
        let state = crate::StateDir::open(dir)?;
        let (store, records, _skipped) = Store::open(&state, history.limit).map_err(|e| match e
            .kind()
        {
            // Another process holds the lock: its message names the folder and the PID.
            std::io::ErrorKind::WouldBlock => Error::new(crate::ErrorKind::InUse, e.to_string()),
            _ => Error::new(
                crate::ErrorKind::Io,
                format!("cannot open the history store in `{}`: {e}", dir.display()),
            ),
        })?;
        let before = records.last().and_then(|r| r.label.clone());
        if let (Some(before), Some(now)) = (&before, &label)
            && before != now
        {
            tracing::warn!(state_dir = %dir.display(), served_before = %before, serving = %now, "the state dir last served another config folder: moved, or shared by two services?");
            history.state.served_before = Some(before.clone());
        }
        history.label = label;
        for record in records {
            let document = Arc::new(record.document);
            history.entries.push_back(HistoryEntry {
                version: record.version,
                // Recomputed, not trusted: the record's checksum already matched.
                hash: ContentHash::of(&document),
                origin: serde_json::from_value(record.origin).unwrap_or(Origin::Other {
                    reason: "unknown (from the history store)".into(),
                }),
                published_at: UNIX_EPOCH + Duration::from_secs_f64(record.published_at.max(0.0)),
                changed: record.changed,
                document,
            });
        }
        history.state.path = store.path().to_path_buf();
        history.store = Some(store);
        Ok(history)
    }

    /// Records a publish; the durable store, if any, is written before this returns.
    ///
    /// A failed write does not stop the publish (the version serves, and is kept in
    /// memory): it is logged, counted, kept in [`StoreStatus`] and returned, and the
    /// store is rewritten whole at the next write that succeeds, so it has no gap.
    pub(crate) fn push(&mut self, snapshot: &Snapshot, changed: Vec<String>) -> Option<Error> {
        let entry = HistoryEntry {
            version: snapshot.version,
            hash: snapshot.hash,
            origin: snapshot.origin.clone(),
            published_at: snapshot.published_at,
            changed,
            document: Arc::clone(&snapshot.document),
        };
        let version = entry.version;
        self.entries.push_back(entry);
        while self.entries.len() > self.limit {
            if let Some(evicted) = self.entries.pop_front() {
                reclaim(evicted.document);
            }
        }
        self.state.unsaved.push(version);
        self.sync().err()
    }

    /// Writes what the store misses: the last version, or everything kept after failures.
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
        let Some(store) = &mut self.store else {
            self.state.unsaved.clear();
            return Ok(());
        };
        if self.state.unsaved.is_empty() {
            return Ok(());
        }
        let label = self.label.as_ref();
        let written = if self.state.error.is_none() && self.state.unsaved.len() == 1 {
            let (last, kept) = self.entries.make_contiguous().split_last().expect("pushed");
            let keep: Vec<Record> = kept.iter().map(|e| to_record(e, label)).collect();
            store.append(&to_record(last, label), &keep)
        } else {
            let all: Vec<Record> = self.entries.iter().map(|e| to_record(e, label)).collect();
            store.replace(&all)
        };
        match written {
            Ok(()) => {
                if self.state.error.take().is_some() {
                    tracing::info!(path = %store.path().display(), versions = ?self.state.unsaved, "the history store caught up");
                }
                self.state.unsaved.clear();
                Ok(())
            }
            Err(e) => {
                self.state.failures += 1;
                let message = format!(
                    "cannot write the history store `{}`: {e}; versions {:?} are kept in memory and written as soon as a write succeeds",
                    store.path().display(),
                    self.state.unsaved
                );
                tracing::error!(path = %store.path().display(), error = %e, unsaved = ?self.state.unsaved, "cannot write the history store");
                ::metrics::counter!("eac_history_write_failures_total").increment(1);
                self.state.error = Some(message.clone());
                Err(Error::new(crate::ErrorKind::Io, message))
            }
        }
    }

    /// The durable store's state, when there is one.
    pub(crate) fn store_status(&self) -> Option<StoreStatus> {
        self.store.as_ref().map(|_| self.state.clone())
    }

    pub(crate) fn push_rejection(&mut self, origin: &Origin, version: u64, errors: &Errors) {
        self.rejections.push_back(Rejection {
            at: SystemTime::now(),
            origin: origin.clone(),
            version,
            errors: errors.as_slice().to_vec(),
        });
        while self.rejections.len() > self.limit {
            self.rejections.pop_front();
        }
    }

    pub(crate) fn get(&self, version: u64) -> Option<&HistoryEntry> {
        self.entries.iter().find(|e| e.version == version)
    }

    pub(crate) fn last(&self) -> Option<&HistoryEntry> {
        self.entries.back()
    }

    pub(crate) fn entries(&self) -> Vec<HistoryEntry> {
        self.entries.iter().cloned().collect()
    }

    pub(crate) fn rejections(&self) -> Vec<Rejection> {
        self.rejections.iter().cloned().collect()
    }

    /// `"3..=12"`, for errors about versions no longer kept.
    pub(crate) fn kept_range(&self) -> String {
        match (self.entries.front(), self.entries.back()) {
            (Some(first), Some(last)) => format!("{}..={}", first.version, last.version),
            _ => "none".to_owned(),
        }
    }
}

fn to_record(entry: &HistoryEntry, label: Option<&String>) -> Record {
    Record {
        version: entry.version,
        hash: entry.hash.to_string(),
        origin: serde_json::to_value(&entry.origin).unwrap_or(Value::Null),
        published_at: entry
            .published_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64(),
        changed: entry.changed.clone(),
        document: Value::clone(&entry.document),
        label: label.cloned(),
    }
}

/// How many evicted documents may wait for the reclaiming thread; past that, the
/// publisher frees them itself, so memory stays bounded.
const RECLAIM_QUEUE: usize = 4;

/// Documents of at most this many values are freed by the publisher itself: for them the
/// hand-off costs more than the frees. Each hand-off wakes the reclaiming thread, a third
/// thread on a core that a reader or the writer was using (`benches/paced.rs`: at 50k
/// publishes/s of a small document, the reader waited for a core 40% of the time).
/// Freeing this many values takes some tens of microseconds, little beside the publish
/// of a document that holds them.
const RECLAIM_FROM: usize = 1024;

/// Frees a document evicted from the history off the publishing thread: a large
/// document is tens of thousands of allocations to free, which would otherwise add to
/// every publish. A document is plain data (no drop has an effect beyond memory), so
/// when it is freed does not matter; one still shared (by a snapshot a request holds,
/// or a newer entry) only loses a reference here. A small one is freed here.
fn reclaim(document: Arc<Value>) {
    static QUEUE: OnceLock<Option<SyncSender<Arc<Value>>>> = OnceLock::new();
    if Arc::strong_count(&document) > 1 || !more_values_than(&document, RECLAIM_FROM) {
        return;
    }
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel::<Arc<Value>>(RECLAIM_QUEUE);
        std::thread::Builder::new()
            .name("eac-reclaim".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .ok()
            .map(|_| tx)
    });
    if let Some(queue) = queue {
        // Full, or the thread is gone: free it here.
        let _ = queue.try_send(document);
    }
}

/// Whether `value` holds more than `limit` values, itself included; counting stops
/// there, so a large document costs no more to ask about than a small one.
fn more_values_than(value: &Value, limit: usize) -> bool {
    fn past(value: &Value, left: &mut usize) -> bool {
        let Some(after) = left.checked_sub(1) else {
            return true;
        };
        *left = after;
        match value {
            Value::Array(items) => items.iter().any(|item| past(item, left)),
            Value::Object(map) => map.values().any(|item| past(item, left)),
            _ => false,
        }
    }
    past(value, &mut { limit })
}

#[cfg(test)]
mod tests {
    use super::store::{Record, Store};
    use crate::source::{Format, Memory};
    use crate::{EaCAccessor, EaCSection, ErrorKind, Origin};

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Limits {
        #[allow(dead_code)]
        max: u64,
    }
    impl EaCSection for Limits {
        const PATH: &'static str = "limits";
    }

    #[test]
    fn only_a_document_of_more_values_than_the_limit_is_large() {
        use super::more_values_than;
        use serde_json::json;
        // The object, the inner object and its two numbers: four values.
        let small = json!({"limits": {"max": 1, "min": 0}});
        assert!(!more_values_than(&small, 4));
        assert!(more_values_than(&small, 3));
        let large = json!({"items": vec![json!({"a": [1, 2]}); 1000]});
        assert!(more_values_than(&large, super::RECLAIM_FROM));
        assert!(!more_values_than(&large, 4002));
        assert!(more_values_than(&large, 4001));
    }

    #[test]
    fn publishing_past_the_last_version_number_is_an_error_not_an_overflow() {
        let state = tempfile::tempdir().unwrap();
        let state = state.path().join("state");
        {
            let dir = crate::StateDir::open(&state).unwrap();
            let (mut store, _, _) = Store::open(&dir, 10).unwrap();
            let record = Record {
                version: u64::MAX - 1,
                hash: String::new(),
                origin: serde_json::json!({"kind": "refresh"}),
                published_at: 1.0,
                changed: Vec::new(),
                document: serde_json::json!({"limits": {"max": 1}}),
                label: None,
            };
            store.append(&record, &[]).unwrap();
        }
        let doc = Memory::new("app", Format::Toml, "[limits]\nmax = 2\n");
        let accessor = EaCAccessor::builder()
            .section::<Limits>()
            .source(doc.clone())
            .durable_history(&state)
            .build()
            .unwrap();
        assert_eq!(accessor.load().version(), u64::MAX);
        doc.set("[limits]\nmax = 3\n");
        let errors = accessor.reload(Origin::Refresh).unwrap_err();
        let error = &errors.as_slice()[0];
        assert_eq!(error.kind(), ErrorKind::Limit, "{errors}");
        assert!(
            error.message().contains("no version number is left"),
            "{errors}"
        );
        assert_eq!(
            accessor.load().version(),
            u64::MAX,
            "the current version stays"
        );
        // And after a restart: the last version is still known, not a number to reuse.
        drop(accessor);
        let again = EaCAccessor::builder()
            .section::<Limits>()
            .source(doc.clone())
            .durable_history(&state)
            .build()
            .unwrap_err();
        assert!(
            again.to_string().contains("no version number is left"),
            "{again}"
        );
    }
}
