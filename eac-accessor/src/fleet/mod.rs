//! The fleet: each instance keeps a record under a lease at `<prefix>.instances/<id>`,
//! so every instance (and an operator with `etcdctl get --prefix <prefix>.instances/`)
//! sees who serves what. Needs the `etcd` feature; the prefix is read and watched by
//! [`source::Etcd`](crate::source::Etcd).
//!
//! # Gray releases
//!
//! One section to a share of the fleet first, judged by the canaries' own health, then
//! promoted to every member or rolled back — without a person.
//!
//! 1. [`Etcd::start_release`](crate::source::Etcd::start_release) validates the section like a `put`, chooses the canaries
//!    among the live members (the first by a hash of release and member id, or the ids
//!    given), and writes in one transaction: the candidate at
//!    `<prefix>.staged/<release>/<section>`, the release record at
//!    `<prefix>.releases/<release>` (`kind: "release"`, `state: "canary"`, the canaries,
//!    the window, the thresholds, the deadline — start + window + a grace, 30 s by
//!    default) and the judge's key `<prefix>.judges/<release>` under the writer's lease.
//! 2. Each canary merges the staged section above the prefix and publishes one version
//!    (origin `canary <release>`); the other members never read `.staged/`. Every member
//!    counts its requests, 5xx answers and latency since it saw the release (the layer's
//!    [meter](crate::EaCAccessor::meter)) and writes them in its record every second.
//! 3. The judge ([`Etcd::judge_release`](crate::source::Etcd::judge_release)) sums the canaries' counts and the stable
//!    members' and asks the [one judge](crate::canary::judge) of both scopes. A breach, a
//!    canary's NACK of the candidate, or a canary's failed health check (its coordinator
//!    rolled the candidate back; the member says so in its record) aborts: the staged keys are deleted and the record
//!    says `aborted` and why; the canaries go back to the prefix's configuration (origin
//!    `abort <release>`). The window passed with enough canary requests and no breach
//!    promotes: one transaction writes the section to the prefix, deletes the staged
//!    keys and marks the record `promoted`; every member then serves it. Past the
//!    deadline without a verdict, the release is aborted (the safe side).
//! 4. The judge is whoever holds `<prefix>.judges/<release>`: the writer while it runs;
//!    if it dies, its lease runs out and a member takes the key over with its own lease
//!    and finishes the judging.
//!
//! While a release is in flight, nothing else is written to the prefix by `put` or
//! another release ([`PutError::InFlight`]).

mod put;
pub(crate) mod records;
mod release;
pub(crate) mod view;

pub use put::{FleetAnswer, PreparedPut, PutError, SectionPut, Written};
pub use release::{DEADLINE_GRACE, Decision, ReleaseOptions, Selector, Started};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use etcd_client::PutOptions;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::accessor::EaCAccessor;
use crate::backoff::Backoff;
use crate::source::Etcd;
use crate::source::etcd::{INSTANCES, Shared};
use crate::subscribe::Event;

/// This instance's membership in the fleet view: a record at `<prefix>.instances/<id>`
/// holding the version and hash it serves, rewritten on each publish and kept alive by a
/// lease; made by [`Etcd::join_fleet`].
///
/// [`leave`](FleetMember::leave) removes the record at once; when the process dies (or
/// the member is dropped), the lease runs out and etcd removes it within the TTL.
pub struct FleetMember {
    task: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    lease: Arc<std::sync::atomic::AtomicI64>,
}

impl std::fmt::Debug for FleetMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetMember")
            .field("prefix", &self.shared.options.prefix)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// The lease's time to live: a dead instance leaves the view this long after it died.
const DEFAULT_TTL: Duration = Duration::from_secs(10);

impl Etcd {
    /// Registers this instance as `id` in the fleet view with a 10 s lease; see
    /// [`FleetMember`]. Needs a Tokio runtime.
    ///
    /// A member also takes part in the prefix's gray releases ([`Etcd::start_release`]):
    /// chosen as a canary, it serves the release's staged candidate; chosen or not, it
    /// counts its requests for the release's judge (through a layer in front of the
    /// service that reads [`EaCAccessor::meter`]) and writes them in its record every
    /// second; and when the release's writer dies, it may take the judging over.
    pub fn join_fleet(&self, accessor: &EaCAccessor, id: impl Into<String>) -> FleetMember {
        self.join_fleet_with(accessor, id, DEFAULT_TTL, BTreeMap::new())
    }

    /// [`join_fleet`](Etcd::join_fleet) with a lease of `ttl` (whole seconds, at least 1).
    pub fn join_fleet_with_ttl(
        &self,
        accessor: &EaCAccessor,
        id: impl Into<String>,
        ttl: Duration,
    ) -> FleetMember {
        self.join_fleet_with(accessor, id, ttl, BTreeMap::new())
    }

    /// [`join_fleet`](Etcd::join_fleet) with a lease of `ttl` and `labels` in the
    /// record (`zone=eu-1`), by which a release may choose its canaries
    /// ([`Selector::Label`]).
    pub fn join_fleet_with(
        &self,
        accessor: &EaCAccessor,
        id: impl Into<String>,
        ttl: Duration,
        labels: BTreeMap<String, String>,
    ) -> FleetMember {
        let id = id.into();
        *crate::sync::lock(&self.shared.member) = Some(id.clone());
        // The admin routes decide this fleet's releases through it.
        *crate::sync::lock(&accessor.publisher.release_control) = Some(Arc::new(self.clone()));
        let lease = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let task = tokio::spawn(run(
            Arc::clone(&self.shared),
            accessor.clone(),
            Member { id, labels },
            ttl.as_secs().max(1) as i64,
            Arc::clone(&lease),
        ));
        FleetMember {
            task: Some(task),
            shared: Arc::clone(&self.shared),
            lease,
        }
    }
}

/// Who this member is.
struct Member {
    id: String,
    labels: BTreeMap<String, String>,
}

impl FleetMember {
    /// Leaves the fleet view now: stops refreshing and revokes the lease, which removes
    /// the record.
    pub async fn leave(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let lease = self.lease.load(std::sync::atomic::Ordering::SeqCst);
        if lease != 0 {
            let mut client = self.shared.client.lease_client();
            let _ = tokio::time::timeout(self.shared.options.request_timeout, client.revoke(lease))
                .await;
        }
    }
}

impl Drop for FleetMember {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    accessor: EaCAccessor,
    me: Member,
    ttl: i64,
    lease_slot: Arc<std::sync::atomic::AtomicI64>,
) {
    let key = format!("{}{INSTANCES}{}", shared.options.prefix, me.id);
    let mut events = accessor.events();
    let (base, max) = shared.options.backoff;
    // Like the watch: a failed attempt waits longer each time, so an outage costs a few
    // attempts, not ten a second.
    let mut backoff = Backoff::new(base.max(Duration::from_millis(100)), max);
    // Said once when the record goes, once when it is back: an outage is two log lines.
    let mut lost = false;
    loop {
        let registered = || {
            if std::mem::take(&mut lost) {
                tracing::info!(key, "etcd: fleet record registered again");
            }
            backoff.reset();
        };
        let result = member(
            &shared,
            &accessor,
            &me,
            &key,
            ttl,
            &lease_slot,
            &mut events,
            registered,
        )
        .await;
        match result {
            Ok(()) => return,
            Err(e) if !lost => {
                lost = true;
                tracing::warn!(error = %crate::source::etcd::readable(&e), key, "etcd: fleet record lost; registering again with backoff");
            }
            Err(e) => {
                tracing::debug!(error = %crate::source::etcd::readable(&e), key, "etcd: fleet record still not registered")
            }
        }
        tokio::time::sleep(backoff.equal_jitter()).await;
    }
}

/// What this member does for the gray release in flight: counts its requests from the
/// moment it saw the release, and judges it when it took the judging over.
#[derive(Default)]
struct InFlight {
    /// The release counted, whether this member is one of its canaries, and the counts.
    metering: Option<(String, bool, Arc<crate::canary::RoleStats>)>,
    /// What of the counts went to the metrics already.
    exported: crate::canary::Exported,
    /// The release this member judges, and the judging task.
    judging: Option<(String, JoinHandle<()>)>,
    /// Each release's state as last seen (for `eac_release_state` and the events).
    states: BTreeMap<String, String>,
    /// A health check that failed (and rolled back) during the release counted.
    health_failed: Option<String>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((_, task)) = self.judging.take() {
            task.abort();
        }
    }
}

/// One lease: granted, written, kept alive and rewritten on each publish, until an error.
#[allow(clippy::too_many_arguments)]
async fn member(
    shared: &Arc<Shared>,
    accessor: &EaCAccessor,
    me: &Member,
    key: &str,
    ttl: i64,
    lease_slot: &std::sync::atomic::AtomicI64,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    registered: impl FnOnce(),
) -> Result<(), etcd_client::Error> {
    let timeout = shared.options.request_timeout;
    let within = |what: &'static str| {
        move |_| etcd_client::Error::LeaseKeepAliveError(format!("{what}: no answer in time"))
    };
    let mut leases = shared.client.lease_client();
    let lease = tokio::time::timeout(timeout, leases.grant(ttl, None))
        .await
        .map_err(within("grant"))??
        .id();
    lease_slot.store(lease, std::sync::atomic::Ordering::SeqCst);
    let mut kv = shared.client.kv_client();
    let mut flight = InFlight::default();
    // What the record says, but for when it was written: a member at rest writes nothing.
    let state = |flight: &InFlight| {
        let snapshot = accessor.load_full();
        let (applied, nack) = shared.acknowledged();
        serde_json::json!({
            "version": snapshot.version(),
            "hash": snapshot.hash().to_string(),
            "pid": std::process::id(),
            "labels": me.labels,
            "applied_revision": applied.map(|a| a.revision),
            "applied_at": applied.map(|a| unix_f64(a.at)),
            // How long the revision applied took to get here, and from what.
            "propagation": applied.map(|a| serde_json::json!({
                "seconds": a.took.as_secs_f64(),
                "from": a.from,
            })),
            "nack": nack,
            // During a gray release: this member's role and counts since it saw it.
            "release": flight.metering.as_ref().map(|(release, canary, stats)| {
                let mut figures = records::member_figures(release, *canary, stats);
                figures["health_failed"] = flight.health_failed.clone().into();
                figures
            }),
        })
    };
    let put = |kv: &mut etcd_client::KvClient, mut record: serde_json::Value| {
        record["updated"] = unix(SystemTime::now()).into();
        let mut kv = kv.clone();
        let key = key.to_owned();
        async move {
            tokio::time::timeout(
                timeout,
                kv.put(
                    key,
                    record.to_string(),
                    Some(PutOptions::new().with_lease(lease)),
                ),
            )
            .await
            .map_err(within("put"))?
            .map(drop)
        }
    };
    let mut written = state(&flight);
    put(&mut kv, written.clone()).await?;
    registered();
    let (mut keeper, mut answers) = tokio::time::timeout(timeout, leases.keep_alive(lease))
        .await
        .map_err(within("keep-alive"))??;
    let mut tick = tokio::time::interval(Duration::from_secs(ttl as u64) / 3);
    // Each second: a gray release in flight is looked for (in the records the watch
    // keeps: no read), and this member's counts written while one is.
    let mut release_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                keeper.keep_alive().await?;
                let answer = tokio::time::timeout(timeout, answers.message())
                    .await
                    .map_err(within("keep-alive"))??;
                if answer.is_none_or(|a| a.ttl() <= 0) {
                    return Err(etcd_client::Error::LeaseKeepAliveError("lease expired".into()));
                }
            }
            // A release record changed (followed at once), or a second passed.
            () = async {
                tokio::select! {
                    () = shared.releases_changed.notified() => {}
                    _ = release_tick.tick() => {}
                }
            } => {
                in_flight(shared, accessor, me, lease, &mut flight).await;
                let now = state(&flight);
                if now != written {
                    put(&mut kv, now.clone()).await?;
                    written = now;
                }
            }
            // After each reload: the version served, the ACK of the revision applied or
            // the NACK of the one rejected — written when any of it changed.
            event = events.recv() => match event {
                // A health check failed after a publish during a release: the judge
                // hears of it (a canary's failure aborts the release).
                Ok(Event::Rejected { origin: crate::snapshot::Origin::AutoRollback { .. }, errors, .. })
                    if flight.metering.is_some() =>
                {
                    let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    flight.health_failed = Some(why.join("; "));
                    let now = state(&flight);
                    if now != written {
                        put(&mut kv, now.clone()).await?;
                        written = now;
                    }
                }
                Ok(
                    Event::Published { .. }
                    | Event::Unchanged { .. }
                    | Event::Rejected { .. }
                    | Event::HeldBack { .. },
                )
                | Err(RecvError::Lagged(_)) => {
                    let now = state(&flight);
                    if now != written {
                        put(&mut kv, now.clone()).await?;
                        written = now;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}

/// Follows the gray releases: each one's state in `eac_release_state{release}` (0 in
/// flight, 1 promoted, -1 aborted) and an [`Event::Release`] when it starts and ends;
/// for the one in flight, counts from when it is first seen (exported as this member's
/// role's `eac_canary_*` figures), and takes its judging over when no one holds its
/// judge's key.
async fn in_flight(
    shared: &Arc<Shared>,
    accessor: &EaCAccessor,
    me: &Member,
    lease: i64,
    flight: &mut InFlight,
) {
    let releases = shared.releases();
    for (id, record) in releases.iter().filter(|(_, r)| r["kind"] == "release") {
        let state = record["state"].as_str().unwrap_or_default();
        if flight.states.get(id).is_some_and(|s| s == state) {
            continue;
        }
        let value = match state {
            records::CANARY => 0.0,
            records::PROMOTED => 1.0,
            _ => -1.0,
        };
        metrics::gauge!("eac_release_state", "release" => id.clone()).set(value);
        let step = match state {
            records::CANARY => "started",
            records::PROMOTED => "promoted",
            _ => "aborted",
        };
        // A release decided before this member saw it is not news.
        if flight.states.contains_key(id) || state == records::CANARY {
            let _ = accessor.publisher.events.send(Event::Release {
                release: id.clone(),
                step,
                role: if records::is_canary(record, &me.id) {
                    "canary"
                } else {
                    "stable"
                },
                why: record["why"].as_str().map(str::to_owned),
            });
        }
        flight.states.insert(id.clone(), state.to_owned());
    }
    flight.states.retain(|id, _| releases.contains_key(id));
    let Some((id, record)) = records::flying(&releases) else {
        if let Some((_, canary, stats)) = flight.metering.take() {
            flight.exported.export(&stats, role(canary));
            accessor.publisher.meter.stop();
        }
        return;
    };
    if flight.metering.as_ref().is_none_or(|(m, ..)| m != id) {
        let stats = accessor.publisher.meter.start();
        let canary = records::is_canary(record, &me.id);
        flight.metering = Some((id.to_owned(), canary, stats));
        flight.exported = crate::canary::Exported::default();
        flight.health_failed = None;
    }
    if let Some((_, canary, stats)) = &flight.metering {
        flight.exported.export(stats, role(*canary));
    }
    let judged_here = flight
        .judging
        .as_ref()
        .is_some_and(|(j, task)| j == id && !task.is_finished());
    if judged_here {
        return;
    }
    let etcd = Etcd {
        shared: Arc::clone(shared),
    };
    match etcd.claim_judge(id, lease, &me.id).await {
        Ok(true) => {
            let release = id.to_owned();
            tracing::warn!(
                release,
                "gray release: its writer is gone; this member judges it"
            );
            let task = tokio::spawn(async move {
                let result = etcd
                    .judge_release(&release, |line| tracing::info!(release, "{line}"))
                    .await;
                if let Err(e) = result {
                    tracing::warn!(release, error = %e, "gray release: judging failed");
                }
            });
            flight.judging = Some((id.to_owned(), task));
        }
        Ok(false) => {}
        Err(e) => tracing::debug!(error = %e, "gray release: cannot claim the judging"),
    }
}

fn role(canary: bool) -> crate::canary::Role {
    if canary {
        crate::canary::Role::Canary
    } else {
        crate::canary::Role::Stable
    }
}

/// Seconds since the Unix epoch, fractional.
pub(crate) fn unix_f64(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds since the Unix epoch.
fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A real etcd whose prefix holds `records` (keys under `prefix`, values), a client of
/// it, and the etcd source reading that prefix: where the fleet's tests of hostile
/// records start.
#[cfg(test)]
pub(crate) async fn etcd_holding(
    prefix: &str,
    records: &[(impl AsRef<str>, impl AsRef<str>)],
) -> (
    eac_tests::etcd::EtcdServer,
    etcd_client::Client,
    crate::source::Etcd,
) {
    use crate::source::{Etcd, EtcdOptions};
    let server = eac_tests::etcd::EtcdServer::start();
    let mut client = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    for (key, value) in records {
        client
            .put(format!("{prefix}{}", key.as_ref()), value.as_ref(), None)
            .await
            .unwrap();
    }
    let etcd = Etcd::connect(EtcdOptions::new([server.endpoint()], prefix))
        .await
        .unwrap();
    (server, client, etcd)
}
