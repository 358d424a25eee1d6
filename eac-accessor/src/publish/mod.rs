//! The publish pipeline: merge → hash → schema → deserialize → validate → readiness →
//! one atomic store → notify.
//!
//! Every step before the store works on a candidate no reader can see, so a failure at
//! any step leaves the current snapshot as it was: there is no partial publish.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::cell::Follow;

use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::history::History;
use crate::keys::Keys;
use crate::metrics;
use crate::resolve;
use crate::resolve::Resolve;
use crate::section::AnySection;
use crate::section::SectionSpec;
use crate::snapshot::{Origin, Snapshot};
use crate::source::Source;
use crate::source::provenance::{self, Kept};
use crate::source::{self, Layer};
pub use crate::status::Outcome;
use crate::status::{PendingChange, Status};
use crate::subscribe::Callbacks;
use crate::subscribe::Event;
use crate::sync::lock;

mod canary;
mod isolate;
mod prepare;
mod preview;
mod scope;

pub(crate) use canary::{CanarySlot, Target};

pub(crate) use prepare::{Hook, next_version, prepare};
pub use preview::{Candidate, Preview};
use scope::scope_kept;
pub(crate) use scope::{Scoped, into_errors, scope};

/// The write side of an accessor: the current snapshot's one writer, and everything
/// it keeps about what it published and refused (history, status, events).
///
/// [`EaCAccessor`](crate::EaCAccessor) reads through it; the reload coordinator calls it
/// directly. Every publish goes through [`reload`](Publisher::reload) or
/// [`republish`](Publisher::republish), every refusal through
/// [`reject`](Publisher::reject).
pub(crate) struct Publisher {
    pub(crate) current: ArcSwap<Snapshot>,
    pub(crate) specs: Box<[SectionSpec]>,
    pub(crate) secrets: Arc<[String]>,
    /// The fields read only at start.
    pub(crate) restarts: Arc<[String]>,
    /// The document this process started on: a restart-only field that differs from it
    /// needs a restart to apply.
    pub(crate) started_on: Arc<Value>,
    /// The keys the sections own: everything else is not configuration.
    pub(crate) keys: Arc<Keys>,
    pub(crate) sources: Box<[Box<dyn Source>]>,
    pub(crate) hooks: Box<[(String, Box<Hook>)]>,
    pub(crate) resolvers: Box<[Box<dyn Resolve>]>,
    /// Serializes writers; holds the fingerprint of the sources the current version was
    /// read from, when it was.
    pub(crate) writer: Mutex<Option<u64>>,
    pub(crate) watchers: Box<[watch::Sender<(u64, AnySection)>]>,
    /// One [`SectionCell`](crate::SectionCell) per section, in registration order.
    pub(crate) cells: Box<[Box<dyn Follow>]>,
    pub(crate) callbacks: Arc<Mutex<Callbacks>>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) status: Mutex<Status>,
    pub(crate) history: Mutex<History>,
    /// The canary serving a share of requests, if one runs.
    pub(crate) canary: CanarySlot,
    /// While a fleet's gray release runs: where every request is counted.
    pub(crate) meter: crate::canary::MeterSlot,
    /// What decides this instance's fleet's gray releases by hand, once it joined one.
    pub(crate) release_control: Mutex<Option<Arc<dyn crate::canary::ReleaseControl>>>,
}

thread_local! {
    /// Whether this thread holds the writer lock: a callback run by a publish that calls
    /// back into the accessor (a preview) must not wait for it.
    static WRITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The writer lock, and this thread marked as holding it until dropped.
pub(crate) struct Writing<'p> {
    guard: std::sync::MutexGuard<'p, Option<u64>>,
}

impl std::ops::Deref for Writing<'_> {
    type Target = Option<u64>;
    fn deref(&self) -> &Option<u64> {
        &self.guard
    }
}

impl std::ops::DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut Option<u64> {
        &mut self.guard
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        WRITING.with(|w| w.set(false));
    }
}

impl Publisher {
    /// Takes the writer lock (one writer at a time keeps versions consecutive).
    fn write(&self) -> Writing<'_> {
        let guard = lock(&self.writer);
        WRITING.with(|w| w.set(true));
        Writing { guard }
    }

    /// The writer lock, unless this thread holds it already (a callback of a publish
    /// calling back into the accessor): then `None`, and the caller works without it.
    pub(super) fn write_unless_writing(&self) -> Option<Writing<'_>> {
        (!WRITING.with(std::cell::Cell::get)).then(|| self.write())
    }

    /// Reads the sources and publishes what they say, if it is new and valid.
    ///
    /// `commit` is asked, under the writer lock, right before the store; when it says no
    /// (the caller gave up waiting), the candidate is rejected as timed out instead.
    pub(crate) fn reload(
        &self,
        origin: Origin,
        commit: &dyn Fn() -> bool,
    ) -> Result<Outcome, Errors> {
        self.reload_to(origin, commit, &Target::Current)
    }

    /// [`reload`](Publisher::reload), publishing a new candidate to `target`: the current
    /// version, or the canary.
    pub(crate) fn reload_to(
        &self,
        origin: Origin,
        commit: &dyn Fn() -> bool,
        target: &Target,
    ) -> Result<Outcome, Errors> {
        // One writer at a time keeps versions consecutive; readers never take this lock.
        // It guards the fingerprint of the sources the current version was read from.
        let mut last_read = self.write();
        self.canary.reading();
        let started = Instant::now();
        let result;
        let held = match source::load_layers(&self.sources) {
            Err(errors) => {
                result = Err(into_errors(errors));
                Vec::new()
            }
            // Every source says exactly what it said last time: nothing to parse, and
            // what was held back stays so.
            Ok(layers) if *last_read == Some(source::fingerprint(&layers)) => {
                // Back to what is served: a canary of something else has nothing to prove.
                self.canary
                    .end_superseded(self, "the change went back to the current version");
                result = Ok(Outcome::Unchanged {
                    snapshot: self.current.load_full(),
                });
                Vec::new()
            }
            Ok(layers) => {
                let read = source::fingerprint(&layers);
                let kept = Arc::new(provenance::keep(&layers));
                let scoped = scope_kept(layers, Arc::clone(&kept), &self.keys, false);
                let held;
                (result, held) = match self.publish_scoped(scoped, origin.clone(), commit, target) {
                    Err(errors) => {
                        self.hold_back(errors, &kept, *last_read, &origin, commit, target)
                    }
                    ok => (ok, Vec::new()),
                };
                // What the sources say is served (not only canaried, nor refused as a
                // canary aborted before).
                let served = match &result {
                    Ok(Outcome::Published { .. }) => true,
                    Ok(Outcome::Unchanged { snapshot }) => {
                        snapshot.hash == self.current.load().hash && !self.canary.was_refused()
                    }
                    _ => false,
                };
                if served {
                    *last_read = Some(read);
                    // What the sources said is now the running configuration, but for
                    // the inputs held back (they were told first).
                    self.sources.iter().for_each(|s| s.committed());
                    let mut status = lock(&self.status);
                    status.held_back = isolate::held_back(&held, &status.held_back);
                }
                held
            }
        };
        self.record(&origin, &result, started);
        if result.is_ok() {
            self.tell_held_back(&origin, &held);
        }
        result
    }

    /// A bad input blocks only itself (see [`isolate`]): when every error of a rejected
    /// candidate is pinned on an input, each source is told, and — while the current
    /// version was read from the sources — the candidate is built again with those
    /// inputs' accepted content. The rebuilt candidate's result replaces the rejection
    /// when it publishes a change; when it changes nothing, only bad inputs changed and
    /// the rejection stands. Returns the result and the inputs held back.
    fn hold_back(
        &self,
        errors: Errors,
        candidate: &Kept,
        read_before: Option<u64>,
        origin: &Origin,
        commit: &dyn Fn() -> bool,
        target: &Target,
    ) -> (Result<Outcome, Errors>, Vec<(SourceName, Errors)>) {
        let Some(culprits) = isolate::culprits(&errors, candidate, &self.specs) else {
            return (Err(errors), Vec::new());
        };
        self.sources.iter().for_each(|s| s.rejected(&culprits));
        if read_before.is_none() {
            return (Err(errors), Vec::new());
        }
        let inputs: Vec<SourceName> = culprits.iter().map(|(input, _)| input.clone()).collect();
        let current = self.current.load_full();
        let layers = candidate.layers_holding_back(&current.kept, &inputs, isolate::input_of);
        let again = self.publish_scoped(
            scope(layers, &self.keys, false),
            origin.clone(),
            commit,
            target,
        );
        match again {
            Ok(published @ (Outcome::Published { .. } | Outcome::Canary { .. })) => {
                (Ok(published), culprits)
            }
            Ok(Outcome::Unchanged { .. }) => {
                // Only bad inputs changed: a rejection, as without holding back. Of the
                // inputs held back, those still rejected stay listed, with their new
                // errors; one that went back to its accepted content is live again.
                let mut status = lock(&self.status);
                let listed = |input: &SourceName| {
                    let shown = input.to_string();
                    status.held_back.iter().any(|h| h.input == shown)
                };
                let still: Vec<_> = culprits.into_iter().filter(|(i, _)| listed(i)).collect();
                status.held_back = isolate::held_back(&still, &status.held_back);
                (Err(errors), Vec::new())
            }
            // Past the build timeout (or shut down): that is the answer.
            Err(again) if again.has(ErrorKind::Timeout) => (Err(again), Vec::new()),
            Err(again) => {
                tracing::info!(%again, "holding back the rejected inputs did not give a valid candidate");
                (Err(errors), Vec::new())
            }
        }
    }

    /// Tells of the inputs a reload held back, after its own event: a log line and an
    /// event for each, and the gauge (the status was set before the reload's report).
    fn tell_held_back(&self, origin: &Origin, held: &[(SourceName, Errors)]) {
        let version = self.current.load().version;
        metrics::held_back(lock(&self.status).held_back.len());
        for (input, errors) in held {
            tracing::warn!(version, %origin, %input, %errors, "input rejected and held back; the rest of the change was published");
            let _ = self.events.send(Event::HeldBack {
                version,
                origin: origin.clone(),
                input: input.to_string(),
                errors: errors.clone(),
            });
        }
    }

    fn publish_scoped(
        &self,
        scoped: Result<Scoped, Vec<Error>>,
        origin: Origin,
        commit: &dyn Fn() -> bool,
        target: &Target,
    ) -> Result<Outcome, Errors> {
        let scoped = scoped.map_err(into_errors)?;
        let current = self.current.load_full();
        let hash = scoped.hash();
        if hash == current.hash && !scoped.is_rejected() {
            // Back to what is served: a canary of something else has nothing to prove.
            self.canary
                .end_superseded(self, "the change went back to the current version");
            return Ok(Outcome::Unchanged { snapshot: current });
        }
        if let Target::Canary { .. } = target
            && !scoped.is_rejected()
            && let Some(outcome) = self.canary.already(&current, hash)
        {
            return Ok(outcome);
        }
        // A canary's number is never reused: the next version comes after it.
        let version = next_version(current.version.max(self.canary.highest_version()))?;
        let candidate = prepare(
            &self.specs,
            &self.secrets,
            &self.keys,
            scoped,
            hash,
            version,
            origin,
        )
        .check(&self.resolvers, Some(&current), &self.hooks)?;
        if !commit() {
            return Err(Error::new(
                ErrorKind::Timeout,
                "the reload was called off (past the build timeout, or its coordinator shut \
                 down); nothing was published",
            )
            .into());
        }
        let snapshot = Arc::new(candidate);
        if let Target::Canary {
            config,
            from_sources,
        } = target
        {
            self.canary
                .start(self, &current, &snapshot, config, *from_sources);
            return Ok(Outcome::Canary {
                snapshot: current,
                canary: snapshot,
            });
        }
        Ok(self.store(current, snapshot))
    }

    /// Makes `snapshot` the current version after `current`: the durable history first,
    /// then the store, the cells, the retired resolvers and the subscribers. A canary
    /// still running is superseded by it.
    fn store(&self, current: Arc<Snapshot>, snapshot: Arc<Snapshot>) -> Outcome {
        self.canary
            .end_superseded(self, "a newer version was published");
        let changed: Vec<usize> = self
            .specs
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                current.document.pointer(&s.pointer) != snapshot.document.pointer(&s.pointer)
            })
            .map(|(i, _)| i)
            .collect();
        let paths: Vec<&'static str> = changed.iter().map(|&i| self.specs[i].path).collect();
        // Durable history first: a crash after it never reuses this version number.
        let unsaved =
            lock(&self.history).push(&snapshot, paths.iter().map(|p| (*p).to_owned()).collect());
        self.current.store(Arc::clone(&snapshot));
        for cell in self.cells.iter() {
            cell.follow(&snapshot);
        }
        resolve::retire(&current, &snapshot);
        if let Some(error) = unsaved {
            let _ = self.events.send(Event::HistoryStoreFailed {
                version: snapshot.version,
                error,
            });
        }

        self.notify(&current, &snapshot, &changed);
        Outcome::Published {
            snapshot,
            changed: paths,
        }
    }

    /// Republishes the document of a kept version as a new version, re-running every
    /// check and readiness hook.
    pub(crate) fn rollback_to(&self, version: u64, origin: Origin) -> Result<Outcome, Errors> {
        let document = {
            let history = lock(&self.history);
            history
                .get(version)
                .map(|e| Arc::clone(&e.document))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "version {version} is not in the history (kept: {})",
                            history.kept_range()
                        ),
                    )
                })
        };
        match document {
            Ok(document) => self.republish(document, version, origin, None),
            Err(e) => {
                let result = Err(e.into());
                self.record(&origin, &result, Instant::now());
                result
            }
        }
    }

    /// Publishes `document` (the content of version `from`) as a new version, re-running
    /// every check. With `only_if_current`, does so only while that version is current.
    pub(crate) fn republish(
        &self,
        document: Arc<Value>,
        from: u64,
        origin: Origin,
        only_if_current: Option<u64>,
    ) -> Result<Outcome, Errors> {
        let mut last_read = self.write();
        let started = Instant::now();
        let current = self.current.load().version;
        let result = match only_if_current {
            Some(expected) if expected != current => Err(Error::new(
                ErrorKind::NotFound,
                format!("version {expected} is no longer current (version {current} is): not rolled back"),
            )
            .into()),
            _ => {
                let name = SourceName::Memory(format!("history version {from}"));
                // A stored document: keys that no section owns now are dropped, not errors.
                let scoped = Layer::from_serialize(name, &*document)
                    .map_err(|e| vec![e])
                    .and_then(|layer| scope(vec![layer], &self.keys, true));
                self.publish_scoped(scoped, origin.clone(), &|| true, &Target::Current)
            }
        };
        if result.as_ref().is_ok_and(Outcome::is_published) {
            // The current version no longer says what the sources say.
            *last_read = None;
        }
        self.record(&origin, &result, started);
        result
    }

    fn notify(&self, old: &Snapshot, new: &Snapshot, changed: &[usize]) {
        for &i in changed {
            let (_, _, section) = &new.sections[i];
            self.watchers[i].send_replace((new.version, Arc::clone(section)));
        }
        let callbacks = lock(&self.callbacks).for_sections(changed);
        for callback in callbacks {
            if catch_unwind(AssertUnwindSafe(|| callback(old, new))).is_err() {
                tracing::error!(version = new.version, "an on_change callback panicked");
            }
        }
    }

    /// Status, event, metrics and log line for one finished reload.
    fn record(&self, origin: &Origin, result: &Result<Outcome, Errors>, started: Instant) {
        let took = started.elapsed();
        let version = self.current.load().version;
        let event = match result {
            Ok(Outcome::Published { snapshot, changed }) => {
                tracing::info!(version, hash = %snapshot.hash, %origin, ?changed, "configuration published");
                Event::Published {
                    version,
                    hash: snapshot.hash,
                    origin: origin.clone(),
                    changed: changed.clone(),
                }
            }
            Ok(Outcome::Unchanged { .. }) => {
                tracing::debug!(version, %origin, "configuration unchanged");
                Event::Unchanged {
                    version,
                    origin: origin.clone(),
                }
            }
            // Told by the canary's own events.
            Ok(Outcome::Canary { .. }) => {
                lock(&self.status).record(origin, result, took);
                return;
            }
            Err(errors) => return self.reject(origin, errors, Some(took)),
        };
        lock(&self.status).record(origin, result, took);
        if let Ok(outcome) = result {
            metrics::record(outcome.as_str(), version, Some(took));
        }
        // No receiver is not an error: events are for whoever listens.
        let _ = self.events.send(event);
    }

    /// Records a rejection wherever one shows — the log, the status (last reload and last
    /// rejection), the kept rejections, the event stream and the metrics — whether the
    /// pipeline refused a candidate, a pending change was invalid, or a version failed
    /// its health check after the publish.
    ///
    /// `took` is how long the pipeline ran, when the rejection ended a run.
    pub(crate) fn reject(&self, origin: &Origin, errors: &Errors, took: Option<Duration>) {
        let version = self.current.load().version;
        tracing::warn!(version, %origin, %errors, "configuration rejected; keeping the current version");
        lock(&self.status).record(origin, &Err(errors.clone()), took.unwrap_or_default());
        lock(&self.history).push_rejection(origin, version, errors);
        metrics::record("rejected", version, took);
        let _ = self.events.send(Event::Rejected {
            version,
            origin: origin.clone(),
            errors: errors.clone(),
        });
    }

    /// Tells the event stream that a background source changed state.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn source_changed(&self, status: crate::source::SourceStatus) {
        let _ = self.events.send(Event::Source { status });
    }

    /// Puts `previous` back as a new version (origin auto-rollback), only while `failed`
    /// is still the current version.
    pub(crate) fn restore(&self, previous: &Snapshot, failed: u64) -> Result<Outcome, Errors> {
        self.republish(
            Arc::clone(&previous.document),
            previous.version,
            Origin::AutoRollback {
                from: previous.version,
            },
            Some(failed),
        )
    }

    /// Keeps a dry run of the sources as the pending change (manual reload mode): a
    /// valid change is shown in the status and sent as [`Event::Pending`]; an invalid
    /// one is rejected; the same content as now clears the pending change.
    pub(crate) fn keep_pending(&self, origin: Origin, preview: &Preview) -> Result<(), Errors> {
        let version = self.current.load().version();
        if let Some(errors) = Errors::from_vec(preview.errors.clone()) {
            lock(&self.status).pending = None;
            self.reject(&origin, &errors, None);
            return Err(errors);
        }
        let mut status = lock(&self.status);
        status.held_back = preview.held_back.clone();
        if preview.unchanged {
            status.pending = None;
            status.differs_from_sources = false;
            return Ok(());
        }
        tracing::info!(version, %origin, "change pending: publish it with a refresh");
        status.pending = Some(PendingChange {
            at: SystemTime::now(),
            origin: origin.clone(),
            diff: preview.diff.clone(),
        });
        status.differs_from_sources = true;
        drop(status);
        let _ = self.events.send(Event::Pending {
            version,
            origin,
            diff: preview.diff.clone(),
        });
        Ok(())
    }
}
