//! The fleet: each instance keeps a record under a lease at `<prefix>.instances/<id>`,
//! so every instance (and an operator with `etcdctl get --prefix <prefix>.instances/`)
//! sees who serves what. Needs the `etcd` feature; the prefix is read and watched by
//! [`source::Etcd`](crate::source::Etcd).

mod put;
pub(crate) mod view;

pub use put::{FleetAnswer, PreparedPut, PutError, SectionPut, Written};

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
    pub fn join_fleet(&self, accessor: &EaCAccessor, id: impl Into<String>) -> FleetMember {
        self.join_fleet_with_ttl(accessor, id, DEFAULT_TTL)
    }

    /// [`join_fleet`](Etcd::join_fleet) with a lease of `ttl` (whole seconds, at least 1).
    pub fn join_fleet_with_ttl(
        &self,
        accessor: &EaCAccessor,
        id: impl Into<String>,
        ttl: Duration,
    ) -> FleetMember {
        let lease = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let task = tokio::spawn(run(
            Arc::clone(&self.shared),
            accessor.clone(),
            id.into(),
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
    id: String,
    ttl: i64,
    lease_slot: Arc<std::sync::atomic::AtomicI64>,
) {
    let key = format!("{}{INSTANCES}{id}", shared.options.prefix);
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

/// One lease: granted, written, kept alive and rewritten on each publish, until an error.
async fn member(
    shared: &Shared,
    accessor: &EaCAccessor,
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
    // What the record says, but for when it was written: a member at rest writes nothing.
    let state = || {
        let snapshot = accessor.load_full();
        let (applied, nack) = shared.acknowledged();
        serde_json::json!({
            "version": snapshot.version(),
            "hash": snapshot.hash().to_string(),
            "pid": std::process::id(),
            "applied_revision": applied.map(|a| a.revision),
            "applied_at": applied.map(|a| unix_f64(a.at)),
            // How long the revision applied took to get here, and from what.
            "propagation": applied.map(|a| serde_json::json!({
                "seconds": a.took.as_secs_f64(),
                "from": a.from,
            })),
            "nack": nack,
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
    let mut written = state();
    put(&mut kv, written.clone()).await?;
    registered();
    let (mut keeper, mut answers) = tokio::time::timeout(timeout, leases.keep_alive(lease))
        .await
        .map_err(within("keep-alive"))??;
    let mut tick = tokio::time::interval(Duration::from_secs(ttl as u64) / 3);
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
            // After each reload: the version served, the ACK of the revision applied or
            // the NACK of the one rejected — written when any of it changed.
            event = events.recv() => match event {
                Ok(
                    Event::Published { .. }
                    | Event::Unchanged { .. }
                    | Event::Rejected { .. }
                    | Event::HeldBack { .. },
                )
                | Err(RecvError::Lagged(_)) => {
                    let now = state();
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
