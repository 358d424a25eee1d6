//! What reloads did and what the accessor reports about itself: the outcome of one
//! reload, the current version, the last reloads, a pending change.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::diff::Diff;
use crate::error::{Error, Errors};
use crate::hash::ContentHash;
use crate::history::StoreStatus;
use crate::resolve::ResolverStatus;
use crate::snapshot::{Origin, Snapshot};
use crate::source::SourceStatus;

/// What a reload did when it did not reject the candidate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// A new version is now current.
    Published {
        /// The new snapshot.
        snapshot: Arc<Snapshot>,
        /// The paths of the sections whose value changed.
        changed: Vec<&'static str>,
    },
    /// The sources say what the current version says; nothing was published.
    Unchanged {
        /// The snapshot that stays current.
        snapshot: Arc<Snapshot>,
    },
    /// The candidate is the running canary ([`ReloadMode::Canary`](crate::reload::ReloadMode::Canary)):
    /// it serves a share of requests while `snapshot` stays current.
    Canary {
        /// The snapshot that stays current.
        snapshot: Arc<Snapshot>,
        /// The canary's snapshot.
        canary: Arc<Snapshot>,
    },
}

impl Outcome {
    /// The snapshot current after the reload.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        match self {
            Outcome::Published { snapshot, .. }
            | Outcome::Unchanged { snapshot }
            | Outcome::Canary { snapshot, .. } => snapshot,
        }
    }

    /// The version current after the reload.
    pub fn version(&self) -> u64 {
        self.snapshot().version()
    }

    /// Whether a new version was published.
    pub fn is_published(&self) -> bool {
        matches!(self, Outcome::Published { .. })
    }

    /// `"published"` or `"unchanged"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Published { .. } => "published",
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::Canary { .. } => "canary",
        }
    }
}

/// The current version and the last reloads' results, for status pages and health checks.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Status {
    /// The version readers see.
    pub version: u64,
    /// Its content hash.
    pub hash: ContentHash,
    /// When it was published.
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub published_at: SystemTime,
    /// What published it (the start, a poll, a file change, a rollback…): the served
    /// version's own origin, which a later rejected or unchanged reload leaves as it
    /// is. The last reload's origin, whatever its outcome, is in
    /// [`last_reload`](Status::last_reload).
    pub origin: Origin,
    /// The most recent reload, whatever its outcome: a rejected one leaves the version
    /// above as it was.
    pub last_reload: Option<ReloadReport>,
    /// The most recent rejected reload.
    pub last_rejection: Option<ReloadReport>,
    /// A valid change found in the sources but not published (manual reload mode).
    pub pending: Option<PendingChange>,
    /// Whether the running version differs, on purpose, from what the sources say:
    /// after a rollback, a start on the last good version, or with a pending change.
    ///
    /// A rejected reload leaves it as it was: when an edit to a file is rejected, the
    /// file holds the rejected edit and the running version is the last good one, yet
    /// this stays `false` — the rejection shows in [`last_reload`](Status::last_reload)
    /// and [`last_rejection`](Status::last_rejection) instead, and the next valid edit
    /// of the file is published as usual.
    pub differs_from_sources: bool,
    /// The fields read only at start (`#[eac(restart)]`) whose published value differs
    /// from the one this process started on: "a restart is needed to apply" them. The new
    /// values are published (the next start uses them); the running service does not read
    /// them until then.
    pub restart_needed: Vec<String>,
    /// The durable history store's state, when there is one.
    pub history_store: Option<StoreStatus>,
    /// The inputs held back: each was rejected, and the running version was built with
    /// its last accepted content in its place, so that it blocked only itself (a bad
    /// remote document does not block a file edit); in manual reload mode, the inputs
    /// left out of the [`pending`](Status::pending) change. Each stays here until it
    /// changes and passes; empty when every input is live. While it is listed,
    /// [`differs_from_sources`](Status::differs_from_sources) stays as it was: this list
    /// is where the difference shows.
    pub held_back: Vec<HeldBack>,
    /// The state of each source that fetches in the background (a remote document, an
    /// etcd prefix), in merge order; empty when every source is read on demand.
    pub sources: Vec<SourceStatus>,
    /// Each resolver's current value: the version that built it, when and how fast, and
    /// how many replaced values are still alive.
    pub resolvers: Vec<ResolverStatus>,
    /// The canary serving a share of requests, when one runs ([`ReloadMode::Canary`](crate::reload::ReloadMode::Canary)).
    pub canary: Option<crate::canary::CanaryStatus>,
}

/// An input (a file, a remote document, an etcd key) whose content was rejected while
/// the rest of a change was published: the running version holds its last accepted
/// content instead.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct HeldBack {
    /// The input, as errors name it (`file `conf/app.toml``, `URL `https://…``,
    /// `etcd:/eac/app/limits`); credentials are never part of it.
    pub input: String,
    /// Since when its current content has been held back.
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub since: SystemTime,
    /// Why it was rejected.
    pub errors: Vec<Error>,
}

/// A change found in the sources and validated, waiting for an operator's refresh.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct PendingChange {
    /// When it was found.
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub at: SystemTime,
    /// What found it (a file change, a poll, a signal).
    pub origin: Origin,
    /// The classified changes from the running version (secrets redacted).
    pub diff: Diff,
}

/// What one reload did.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// When it finished.
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub at: SystemTime,
    /// What caused it.
    pub origin: Origin,
    /// `"published"`, `"unchanged"` or `"rejected"`.
    pub outcome: &'static str,
    /// The version current after it.
    pub version: u64,
    /// How long it took (serialized as `duration_ms`).
    #[serde(rename = "duration_ms", serialize_with = "crate::json_time::millis")]
    pub duration: Duration,
    /// Every problem, when rejected (empty otherwise).
    pub errors: Vec<Error>,
    /// The inputs held back when it finished, unless it was rejected (see
    /// [`Status::held_back`]).
    pub held_back: Vec<String>,
}

impl Status {
    pub(crate) fn record(
        &mut self,
        origin: &Origin,
        result: &Result<Outcome, Errors>,
        took: Duration,
    ) {
        let (outcome, errors, held_back) = match result {
            Ok(outcome) => {
                let snapshot = outcome.snapshot();
                // A rollback serves what the sources no longer say; anything else was
                // read from them.
                self.differs_from_sources = matches!(
                    origin,
                    Origin::Rollback { .. } | Origin::AutoRollback { .. }
                );
                if !self.differs_from_sources {
                    self.pending = None;
                }
                self.version = snapshot.version;
                self.hash = snapshot.hash;
                self.published_at = snapshot.published_at;
                self.origin = snapshot.origin.clone();
                let held = self.held_back.iter().map(|h| h.input.clone()).collect();
                (outcome.as_str(), Vec::new(), held)
            }
            Err(errors) => ("rejected", errors.as_slice().to_vec(), Vec::new()),
        };
        let report = ReloadReport {
            at: SystemTime::now(),
            origin: origin.clone(),
            outcome,
            version: self.version,
            duration: took,
            errors,
            held_back,
        };
        if report.outcome == "rejected" {
            self.last_rejection = Some(report.clone());
        }
        self.last_reload = Some(report);
    }
}
