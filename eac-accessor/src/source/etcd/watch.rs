//! The watch task: events in, a read at the batch's revision, a trigger out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions, WatchResponse};
use tokio::task::JoinHandle;

use super::read::too_large;
use super::{Changed, Etcd, Key, Shared, lock, release_record};
use crate::backoff::Backoff;
use crate::error::Error;
use crate::reload::ReloadCoordinator;
use crate::snapshot::Origin;

/// The task that watches an etcd prefix and reloads through a [`ReloadCoordinator`]; made
/// by [`Etcd::watch`]. Stops when [`stop`](EtcdWatch::stop)ped or dropped.
#[derive(Debug)]
pub struct EtcdWatch {
    task: Option<JoinHandle<()>>,
}

impl EtcdWatch {
    /// Stops the watch and waits until its task has ended.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Etcd {
    /// Starts watching the prefix: each change is read at its revision and handed to
    /// `reloads` ([`ReloadCoordinator::trigger`]: published at once, or kept as pending in
    /// manual mode). Needs a Tokio runtime.
    ///
    /// The watch reconnects by itself after an outage, resuming at the last revision it
    /// saw + 1, and reads everything again after a compaction.
    pub fn watch(&self, reloads: &ReloadCoordinator) -> EtcdWatch {
        let task = tokio::spawn(run(Arc::clone(&self.shared), reloads.clone()));
        EtcdWatch { task: Some(task) }
    }
}

/// Why a watch stream ended.
enum Ended {
    /// The start revision was compacted, the server cancelled the watch, the cluster is
    /// behind what was seen, or a batch was over the decode bound: read all.
    Resync,
    /// The connection failed.
    Failed(Error),
}

async fn run(shared: Arc<Shared>, reloads: ReloadCoordinator) {
    let (base, max) = shared.options.backoff;
    let mut backoff = Backoff::new(base, max);
    // Started from something other than a full read (nothing yet): read everything first.
    let mut resync = {
        let state = lock(&shared.state);
        state.current.revision == 0 || state.current.from_cache
    };
    loop {
        if resync {
            match shared.read_at(0).await {
                Ok(changed) => {
                    resync = false;
                    if let Some(changed) = changed {
                        trigger(&reloads, changed).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "etcd: cannot read the prefix; retrying");
                    shared.background.failed(&e, |_| {});
                    tokio::time::sleep(backoff.equal_jitter()).await;
                    continue;
                }
            }
        }
        let started = Instant::now();
        let ended = watch_once(&shared, &reloads).await;
        match ended {
            Ended::Resync => resync = true,
            Ended::Failed(e) => {
                tracing::warn!(error = %e, "etcd: watch interrupted; reconnecting");
                shared.background.failed(&e, |_| {});
            }
        }
        tokio::time::sleep(after_watch(&mut backoff, started.elapsed())).await;
    }
}

/// One watch stream, from the last revision seen + 1, until it ends: a watch of each
/// configuration range, one of the instance records and one of the release records, so that no value of another
/// record under `<prefix>.` is ever sent.
async fn watch_once(shared: &Shared, reloads: &ReloadCoordinator) -> Ended {
    let from = lock(&shared.state).seen + 1;
    let mut ranges = shared.config_ranges();
    ranges.push(shared.instance_range());
    ranges.push(shared.release_range());
    let watch = |(start, end): (Vec<u8>, Vec<u8>)| {
        (
            start,
            WatchOptions::new()
                .with_range(end)
                .with_start_revision(from),
        )
    };
    let mut ranges = ranges.into_iter().map(watch);
    let Some((first, options)) = ranges.next() else {
        return Ended::Resync;
    };
    let mut client = shared
        .client
        .watch_client()
        .max_decoding_message_size(shared.message_cap());
    let opened = tokio::time::timeout(shared.options.request_timeout, async {
        let mut stream = client.watch(first, Some(options)).await?;
        for (start, options) in ranges {
            stream.watch(start, Some(options)).await?;
        }
        Ok::<_, etcd_client::Error>(stream)
    })
    .await;
    let mut stream = match opened {
        Err(_) => {
            return Ended::Failed(shared.io_error(
                "cannot open the watch",
                format!("no answer within {:?}", shared.options.request_timeout),
            ));
        }
        Ok(Err(e)) => return Ended::Failed(shared.etcd_error("cannot open the watch", &e)),
        Ok(Ok(stream)) => stream,
    };
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => {
                return Ended::Failed(shared.io_error("the watch ended", "closed by the server"));
            }
            // A batch over the decode bound (many revisions at once): read the latest.
            Err(e) if too_large(&e) => {
                tracing::warn!(error = %e, "etcd: a watch batch over the decode bound; reading everything again");
                return Ended::Resync;
            }
            Err(e) => return Ended::Failed(shared.etcd_error("the watch failed", &e)),
        };
        // The cluster answers below what was seen before this watch opened: restored
        // from a backup or replaced. Its history is not ours; what it holds now is read
        // afresh. (Not what was seen since: this member's own record may have been
        // written, and seen, after the cluster sent this answer.)
        let at = response.header().map_or(0, |h| h.revision());
        if at > 0 && at < from - 1 {
            tracing::warn!(
                revision = at,
                "etcd: the cluster went back in revisions; reading everything again"
            );
            return Ended::Resync;
        }
        // Compaction is told by the revision; etcd 3.4 sends no reason with it.
        if response.compact_revision() > 0 {
            lock(&shared.state).compacted += 1;
            tracing::info!(
                compacted = response.compact_revision(),
                "etcd: watch revision compacted; reading everything again"
            );
            return Ended::Resync;
        }
        if response.canceled() {
            tracing::info!(reason = response.cancel_reason(), "etcd: watch cancelled");
            return Ended::Resync;
        }
        if response.created() {
            shared.background.reached();
        }
        if let Some(revision) = on_events(shared, &response) {
            match shared.read_at(revision).await {
                Ok(Some(changed)) => trigger(reloads, changed).await,
                Ok(None) => {}
                // The batch's revision may be compacted already: read the latest.
                Err(_) => return Ended::Resync,
            }
        }
    }
}

/// Applies a batch's instance records; returns the revision to read again at when
/// configuration keys changed, or a gray release chose this member as a canary or
/// ended.
fn on_events(shared: &Shared, response: &WatchResponse) -> Option<i64> {
    let mut config_revision = None;
    shared.background.asked();
    let mut state = lock(&shared.state);
    for event in response.events() {
        let Some(kv) = event.kv() else { continue };
        state.seen = state.seen.max(kv.mod_revision());
        match shared.classify(kv.key()) {
            Key::Config(_) => {
                config_revision = config_revision.max(Some(kv.mod_revision()));
            }
            Key::Instance(id) => match event.event_type() {
                // Kept as written: parsed only when the fleet is shown.
                EventType::Put => {
                    state.fleet.insert(id.to_owned(), kv.value().into());
                }
                EventType::Delete => {
                    state.fleet.remove(id);
                }
            },
            // Before the configuration it released is read and committed (the same
            // batch): its time is where the propagation is measured from.
            Key::Release(id) => match event.event_type() {
                EventType::Put => {
                    let record = release_record(kv.value(), kv.mod_revision());
                    state.releases.insert(id.to_owned(), record);
                    shared.releases_changed.notify_one();
                }
                EventType::Delete => {
                    state.releases.remove(id);
                    shared.releases_changed.notify_one();
                }
            },
            Key::Ignored => {}
        }
    }
    let staged = shared.staged_for_me(&state.releases);
    if staged != state.current.staged {
        config_revision = config_revision.max(Some(state.seen));
    }
    config_revision
}

async fn trigger(reloads: &ReloadCoordinator, changed: Changed) {
    let Changed {
        keys,
        revision,
        release,
    } = changed;
    let origin = match release {
        Some((step, release)) => Origin::Release {
            step: step.to_owned(),
            release,
        },
        None => Origin::Etcd { keys, revision },
    };
    if let Err(errors) = reloads.trigger(origin).await {
        // Recorded in the accessor's status and events; here only a trace.
        tracing::debug!(%errors, revision, "etcd: change not published");
    }
}

/// The wait after a watch that lasted `lasted`: a watch that lasted is healthy, and
/// what ended it starts the backoff afresh; one that ends at once again and again (a
/// server cancelling every watch) backs off further each time, never a tight loop.
fn after_watch(backoff: &mut Backoff, lasted: Duration) -> Duration {
    if lasted >= backoff.max() {
        backoff.reset();
    }
    backoff.equal_jitter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_cancelled_at_once_back_off_and_a_lasting_one_starts_afresh() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = Backoff::new(base, max);
        let waits: Vec<Duration> = (0..10)
            .map(|_| after_watch(&mut backoff, Duration::ZERO))
            .collect();
        // Each wait is at least half the current step, and the step doubles up to max.
        for (i, wait) in waits.iter().enumerate() {
            let step = (base * 2u32.pow(i as u32)).min(max);
            assert!(
                *wait >= step / 2 && *wait <= step,
                "wait {i}: {wait:?} (step {step:?})"
            );
        }
        let total: Duration = waits.iter().sum();
        assert!(
            total >= Duration::from_secs(10),
            "ten cancelled watches waited {total:?}"
        );
        // A watch that lasted the max resets: the next wait is back at the base.
        assert!(after_watch(&mut backoff, max) <= base);
    }
}
