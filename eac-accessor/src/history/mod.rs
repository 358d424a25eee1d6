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
use std::sync::Arc;
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
    #[serde(serialize_with = "crate::accessor::unix_seconds")]
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
    #[serde(serialize_with = "crate::accessor::unix_seconds")]
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
}

impl History {
    pub(crate) fn new(limit: usize) -> History {
        History {
            entries: VecDeque::new(),
            rejections: VecDeque::new(),
            limit: limit.max(1),
            store: None,
        }
    }

    /// Opens the durable store in `dir` and loads what it holds.
    pub(crate) fn open(dir: &Path, limit: usize) -> Result<History, Error> {
        let mut history = History::new(limit);
        let (store, records, _skipped) = Store::open(dir, history.limit).map_err(|e| {
            Error::new(
                crate::ErrorKind::Io,
                format!("cannot open the history store in `{}`: {e}", dir.display()),
            )
        })?;
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
        history.store = Some(store);
        Ok(history)
    }

    /// Records a publish; the durable store, if any, is written before this returns.
    pub(crate) fn push(&mut self, snapshot: &Snapshot, changed: Vec<String>) {
        let entry = HistoryEntry {
            version: snapshot.version,
            hash: snapshot.hash,
            origin: snapshot.origin.clone(),
            published_at: snapshot.published_at,
            changed,
            document: Arc::clone(&snapshot.document),
        };
        if let Some(store) = &mut self.store {
            let keep: Vec<Record> = self.entries.iter().map(to_record).collect();
            if let Err(e) = store.append(&to_record(&entry), &keep) {
                tracing::error!(version = entry.version, error = %e, "cannot write the history store");
            }
        }
        self.entries.push_back(entry);
        while self.entries.len() > self.limit {
            self.entries.pop_front();
        }
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

fn to_record(entry: &HistoryEntry) -> Record {
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
    }
}
