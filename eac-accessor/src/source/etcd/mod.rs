//! An etcd v3 prefix as a source, watched: one configuration for a fleet of instances.
//!
//! Feature `etcd` (never a default: building the gRPC client needs `protoc`).
//!
//! # Layouts
//!
//! - **Sections** (the default): every key under the prefix is a section named by the
//!   rest of the key — `/eac/app/limits` holds the `limits` section as JSON; a key ending
//!   in `.toml`, `.yaml`/`.yml` or `.json` is read in that format, the extension not part
//!   of the name; `/` nests (`/eac/app/server/http` is `server.http`). Two keys of one
//!   section (`limits` and `limits.toml`) are each rejected, naming the other.
//! - **Document** ([`EtcdOptions::document`]): one key holds the whole document, in the
//!   format of its extension (JSON without one).
//!
//! Keys whose name (the part after the prefix) starts with `.` are eac's own records —
//! `<prefix>.instances/<id>` for the [fleet view](Etcd::join_fleet) — and never
//! configuration: a change to them triggers no reload.
//!
//! # Revisions
//!
//! The first read is one range read of the prefix at one revision. The [watch](Etcd::watch)
//! starts at that revision + 1; for each batch of events the prefix is read again *at the
//! batch's revision*, so what is published is a state the cluster really had: a
//! transaction that changes several keys lands as one version, never half of it. A watch
//! cancelled because its revision was compacted (told by the response's compact revision,
//! not its message) leads to a full read and a new watch; nothing is lost.
//!
//! # Outages
//!
//! The connection has HTTP/2 keep-alive, so a hung server (a paused process, a dead
//! network path) is noticed within [`EtcdOptions::keep_alive`]'s bound; the source is then
//! reported down in [`SourceStatus`] and reconnects with exponential backoff and jitter,
//! resuming at the last revision seen + 1. Meanwhile [`load`](Source::load) keeps
//! returning the last state read, so the running version is never touched.
//!
//! # Metrics
//!
//! Per source, labelled `source="etcd:<prefix>"`, as for the remote HTTP source:
//! `eac_source_up`, `eac_source_last_success_timestamp_seconds`,
//! `eac_source_requests_total{result}` (`modified`, `not_modified`, `error`: one per read
//! of the prefix or failed watch) and `eac_source_serving_cache`. For the fleet:
//! `eac_applied_revision` (the revision of the prefix served), `eac_rejected_revision` and
//! `eac_nacks_total` (revisions rejected), and `eac_fleet_propagation_seconds{from}`, the
//! time from this instance's receipt of a change (`from="receipt"`) to its readers
//! seeing it.
//!
//! ```no_run
//! use eac_accessor::EaCAccessor;
//! use eac_accessor::reload::{ReloadConfig, ReloadCoordinator};
//! use eac_accessor::source::{Dir, Env, Etcd, EtcdOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let etcd = Etcd::connect(EtcdOptions::new(["http://127.0.0.1:2379"], "/eac/app/")).await?;
//! let accessor = EaCAccessor::builder()
//!     .source(Dir::new("config"))
//!     .source(etcd.clone()) // above the files
//!     .source(Env::prefixed("APP_")) // below the environment
//!     .build()?;
//! let reloads = ReloadCoordinator::new(accessor.clone(), ReloadConfig::from_env()?);
//! let watch = etcd.watch(&reloads); // a put is live on every instance
//! let member = etcd.join_fleet(&accessor, "web-1"); // seen in every instance's status
//! # member.leave().await; watch.stop().await;
//! # Ok(()) }
//! ```
mod cached;
pub(crate) mod entry;
mod options;
pub(crate) mod read;
mod watch;

pub use options::EtcdOptions;
pub use watch::EtcdWatch;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use etcd_client::{Client, ConnectOptions};

use super::background::{Background, Found};
use super::status::SourceStatus;
use super::{Layer, Source};
use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::sync::lock;
use entry::{Entry, Key, instance_record, release_record, unreadable};

/// The name part (after the prefix) under which eac keeps one record per instance.
pub(crate) const INSTANCES: &str = ".instances/";

/// The name part under which writers record their writes: `<prefix>.releases/<id>`,
/// written in the same transaction as what they released.
pub(crate) const RELEASES: &str = ".releases/";

/// The name part under which a gray release keeps its candidate:
/// `<prefix>.staged/<release>/<section key>`, read only by the release's canaries.
pub(crate) const STAGED: &str = ".staged/";

/// The name part of the key a release's judge holds under its lease:
/// `<prefix>.judges/<release>`.
pub(crate) const JUDGES: &str = ".judges/";

/// An etcd prefix as a [`Source`]: a cheap handle, cloned into the builder and kept to
/// [`watch`](Etcd::watch) and [`join_fleet`](Etcd::join_fleet); see the
/// [module docs](self).
#[derive(Clone)]
pub struct Etcd {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Etcd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.shared.options.endpoints)
            .field("prefix", &self.shared.options.prefix)
            .field("revision", &lock(&self.shared.state).current.revision)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    pub(crate) options: EtcdOptions,
    pub(crate) client: Client,
    state: Mutex<State>,
    background: Background,
    /// This instance's id in the fleet, once it joined: a gray release's canaries are
    /// chosen by it.
    pub(crate) member: Mutex<Option<String>>,
    /// Told when a release record changed: a fleet member follows a release from the
    /// moment it starts, not from its next tick.
    pub(crate) releases_changed: tokio::sync::Notify,
    /// The committed state waiting to be cached ([`Shared::cache_committed`]).
    cache_writes: Mutex<cached::CacheWrites>,
    /// Held while the cache file is written: one write at a time.
    cache_writing: Mutex<()>,
}

struct State {
    /// The last state read from the cluster.
    current: Arc<Fetched>,
    /// What [`Source::load`] returned last: committed by [`Source::committed`].
    loaded: Option<Arc<Fetched>>,
    /// The highest revision the watch has delivered (config keys or not).
    seen: i64,
    /// Watches cancelled because their start revision was compacted.
    compacted: u64,
    /// Instance id → its record as written (parsed only when shown: a fleet of N
    /// members sends each one N records per change, most never looked at).
    fleet: BTreeMap<String, Arc<[u8]>>,
    /// Release id → its record, with `"revision"` (its mod_revision) added.
    releases: BTreeMap<String, serde_json::Value>,
    /// When the configuration revision read last was first seen here.
    changed_at: SystemTime,
    /// The ACK: the revision of the prefix that what is served reflects, when it was
    /// applied and how long it took to get here (a revision read from the cluster, not
    /// the cache).
    applied: Option<Applied>,
    /// The NACK: the keys of the prefix rejected, at the latest revision that changed
    /// one of them, until none is held back.
    nack: Option<Nack>,
    /// The keys held back in what `load` returned last (their accepted value is served).
    held: Vec<String>,
    /// What was committed last, as served: the accepted value of a held-back key.
    committed: Option<Arc<Fetched>>,
}

/// A change read from the prefix: the keys it touched, at a revision, and the step of a
/// gray release it took on this member, if it did.
pub(crate) struct Changed {
    keys: Vec<String>,
    revision: i64,
    release: Option<(&'static str, String)>,
}

/// A revision of the prefix applied: a fleet member's ACK.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Applied {
    pub(crate) revision: i64,
    pub(crate) at: SystemTime,
    /// From the writer's record of the release (`put`, `release`), or from this instance's receipt
    /// of the change, to its readers seeing it.
    pub(crate) took: Duration,
    /// `"release"` or `"receipt"`: where `took` is measured from.
    pub(crate) from: &'static str,
}

/// A revision of the prefix that was read and rejected: a fleet member's NACK.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Nack {
    pub(crate) revision: i64,
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub(crate) at: SystemTime,
    /// Each naming its key as `etcd:<key>@<revision>` and what was expected; no value
    /// shown, a secret's or not.
    pub(crate) errors: Errors,
}

impl State {
    /// The ACK of `revision`, applied now: timed from the writer's record of it when
    /// there is one (a `put`, whose record shares its revision), else from this
    /// instance's receipt of the change.
    fn propagated(&self, revision: i64) -> Applied {
        let now = SystemTime::now();
        let released = self.releases.values().find_map(|r| {
            (r["revision"].as_i64() == Some(revision))
                .then(|| crate::fleet::records::written_at(r))
                .flatten()
                .and_then(crate::fleet::records::unix_time)
        });
        let (since, from) = match released {
            Some(at) => (at, "release"),
            None => (self.changed_at, "receipt"),
        };
        Applied {
            revision,
            at: now,
            took: now.duration_since(since).unwrap_or_default(),
            from,
        }
    }
}

impl Shared {
    /// The ACK (applied revision, when and how fast) and the NACK, for the fleet record.
    pub(crate) fn acknowledged(&self) -> (Option<Applied>, Option<Nack>) {
        let state = lock(&self.state);
        (state.applied, state.nack.clone())
    }
}

/// The configuration keys of the prefix at one revision.
#[derive(Debug)]
pub(crate) struct Fetched {
    revision: i64,
    entries: Vec<Entry>,
    /// Read from the last-known-good cache, not from the cluster.
    from_cache: bool,
    /// The gray release whose staged candidate its entries hold (this member is one of
    /// its canaries).
    staged: Option<String>,
}

impl Fetched {
    /// The revision that last changed the configuration it holds: the highest
    /// `mod_revision` of its keys. Every member that read the same content says the same,
    /// whatever the cluster's revision was when it read (instance records move that).
    pub(crate) fn config_revision(&self) -> i64 {
        self.entries
            .iter()
            .map(|e| e.mod_revision)
            .max()
            .unwrap_or(0)
    }

    /// This read as served when `held` keys are held back: each with its entry in
    /// `accepted` (what was served before), or left out when it had none.
    fn holding_back(&self, held: &[String], accepted: Option<&Fetched>) -> Fetched {
        let entries = self
            .entries
            .iter()
            .filter_map(|entry| {
                if !held.contains(&entry.key) {
                    return Some(entry.clone());
                }
                accepted?
                    .entries
                    .iter()
                    .find(|e| e.key == entry.key)
                    .cloned()
            })
            .collect();
        Fetched {
            revision: self.revision,
            entries,
            from_cache: self.from_cache,
            staged: self.staged.clone(),
        }
    }
}

impl Etcd {
    /// Connects and reads the prefix once, at one revision, within the request timeout.
    ///
    /// Fails with an [`ErrorKind::Io`] error naming `etcd:<prefix>` when the cluster
    /// cannot be read and there is no usable [cache](EtcdOptions::cache); with one, starts
    /// from it at once, reported as serving from the cache. A value that does not parse
    /// does not fail here: it is reported, naming its key and revision, when the accessor
    /// is built.
    ///
    /// ```no_run
    /// use eac_accessor::source::{Etcd, EtcdOptions, LastGood};
    ///
    /// # async fn run() -> Result<(), eac_accessor::Error> {
    /// let options = EtcdOptions::new(["http://127.0.0.1:2379"], "/eac/app/")
    ///     .cache(LastGood::new("/var/lib/app/etcd.cache"));
    /// let etcd = Etcd::connect(options).await?; // from the cache if etcd is down
    /// println!("read at revision {}", etcd.revision());
    /// # Ok(()) }
    /// ```
    pub async fn connect(options: EtcdOptions) -> Result<Etcd, Error> {
        let shared = Shared::new(options).await?;
        let etcd = Etcd {
            shared: Arc::new(shared),
        };
        if let Err(e) = etcd.shared.read_at(0).await {
            etcd.shared.background.failed(&e, |_| {});
            if !etcd.shared.start_from_cache() {
                return Err(e);
            }
            tracing::warn!(error = %e, "etcd unreachable at start; serving the last-known-good cache");
        }
        Ok(etcd)
    }

    /// The options this source was made with.
    pub fn options(&self) -> &EtcdOptions {
        &self.shared.options
    }

    /// The revision of the state this source holds now (0 before any read).
    pub fn revision(&self) -> i64 {
        lock(&self.shared.state).current.revision
    }

    /// The underlying client, connected to the same endpoints.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }
}

impl Shared {
    async fn new(options: EtcdOptions) -> Result<Shared, Error> {
        let name = prefix_name(&options.prefix);
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(options.keep_alive.0, options.keep_alive.1)
            .with_keep_alive_while_idle(true);
        // The client connects lazily: building it fails only on a malformed endpoint.
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot use the endpoints: {}", readable(&e)),
                )
                .with_source(name.clone())
            })?;
        Ok(Shared {
            background: Background::new("etcd", name.to_string()),
            options,
            client,
            state: Mutex::new(State {
                current: Arc::new(Fetched {
                    revision: 0,
                    entries: Vec::new(),
                    from_cache: false,
                    staged: None,
                }),
                loaded: None,
                seen: 0,
                compacted: 0,
                fleet: BTreeMap::new(),
                releases: BTreeMap::new(),
                changed_at: SystemTime::now(),
                applied: None,
                nack: None,
                held: Vec::new(),
                committed: None,
            }),
            member: Mutex::new(None),
            releases_changed: tokio::sync::Notify::new(),
            cache_writes: Mutex::default(),
            cache_writing: Mutex::new(()),
        })
    }

    fn name(&self) -> SourceName {
        prefix_name(&self.options.prefix)
    }

    pub(crate) fn io_error(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Io, format!("{what}: {e}")).with_source(self.name())
    }

    /// An error of the client, as a sentence: what failed, at which endpoints, and the
    /// cause read down its chain ("tcp connect error: Connection refused (os error
    /// 111)") — never the client's debug text.
    pub(crate) fn etcd_error(&self, what: &str, e: &etcd_client::Error) -> Error {
        let at = self.options.endpoints.join(", ");
        self.io_error(&format!("{what} at {at}"), readable(e))
    }

    /// Reads the prefix at `revision` (0: the latest) and keeps it; returns the keys that
    /// changed since the state held before, if any.
    async fn read_at(&self, revision: i64) -> Result<Option<Changed>, Error> {
        self.background.asked();
        // A read of the latest state is a resync: the instance records too. One at a
        // watch event's revision skips them (the watch delivered them).
        let read = self.read_some(revision, revision == 0).await?;
        Ok(self.store(read, revision == 0))
    }

    fn store(&self, read: read::Read, latest: bool) -> Option<Changed> {
        let revision = read.revision;
        let mut entries = Vec::new();
        for raw in &read.config {
            if let Key::Config(name) = self.classify(&raw.key) {
                entries.push(self.entry(name, &raw.key, raw.value.as_deref(), raw.mod_revision));
            }
        }
        // A canary of a gray release: its staged sections above the prefix's, each in
        // place of the section's own keys.
        if let Some(release) = &read.staged_release {
            let dir = format!("{}{STAGED}{release}/", self.options.prefix);
            let staged: Vec<(Option<&str>, &read::Raw)> = read
                .staged
                .iter()
                .filter_map(|raw| {
                    let name = raw.key.strip_prefix(dir.as_bytes())?;
                    Some((std::str::from_utf8(name).ok(), raw))
                })
                .collect();
            // The sections staged, gathered first: the prefix's keys are looked at once,
            // not once per staged key.
            let sections: std::collections::HashSet<&str> = staged
                .iter()
                .filter_map(|(name, _)| name.map(entry::section_of))
                .collect();
            let prefix = self.options.prefix.as_str();
            entries.retain(|e| {
                e.key
                    .strip_prefix(prefix)
                    .is_none_or(|own| !sections.contains(entry::section_of(own)))
            });
            for (name, raw) in staged {
                entries.push(self.entry(name, &raw.key, raw.value.as_deref(), raw.mod_revision));
            }
        }
        let mut fleet = BTreeMap::new();
        for raw in &read.instances {
            if let Key::Instance(id) = self.classify(&raw.key) {
                let record: Arc<[u8]> = raw.value.as_deref().unwrap_or_default().into();
                fleet.insert(id.to_owned(), record);
            }
        }
        let releases = self.release_records(&read.releases);
        let mut state = lock(&self.state);
        let before: BTreeMap<&str, (i64, u64)> = state
            .current
            .entries
            .iter()
            .map(|e| (e.key.as_str(), (e.mod_revision, e.value_hash)))
            .collect();
        let after: BTreeMap<&str, (i64, u64)> = entries
            .iter()
            .map(|e| (e.key.as_str(), (e.mod_revision, e.value_hash)))
            .collect();
        let mut changed: Vec<String> = after
            .iter()
            .filter(|(k, r)| before.get(*k) != Some(*r))
            .map(|(k, _)| (*k).to_owned())
            .chain(
                before
                    .keys()
                    .filter(|k| !after.contains_key(*k))
                    .map(|k| (*k).to_owned()),
            )
            .collect();
        changed.sort();
        let found = if state.current.revision == 0 || !changed.is_empty() {
            Found::Modified
        } else if state.current.from_cache {
            // What the cache holds is what the cluster holds: served as read.
            Found::Served
        } else {
            Found::NotModified
        };
        if found == Found::Modified {
            state.changed_at = SystemTime::now();
        }
        let step = match (&state.current.staged, &read.staged_release) {
            (Some(before), Some(after)) if before == after => None,
            (_, Some(release)) => Some(("canary", release.clone())),
            (Some(release), None) => {
                let promoted = releases
                    .get(release)
                    .is_some_and(|r| r["state"] == crate::fleet::records::PROMOTED);
                Some((if promoted { "promote" } else { "abort" }, release.clone()))
            }
            // A stable member: the promotion's write is what changed.
            (None, None) => releases
                .iter()
                .find(|(_, r)| {
                    r["state"] == crate::fleet::records::PROMOTED
                        && r["revision"].as_i64() == Some(revision)
                })
                .map(|(id, _)| ("promote", id.clone())),
        };
        state.current = Arc::new(Fetched {
            revision,
            entries,
            from_cache: false,
            staged: read.staged_release,
        });
        if latest {
            if revision < state.seen {
                tracing::warn!(
                    prefix = %self.options.prefix,
                    revision,
                    seen = state.seen,
                    "etcd: the cluster is at a revision below one already seen (restored or \
                     replaced); watching from its revision"
                );
            }
            state.seen = revision;
        } else {
            state.seen = state.seen.max(revision);
        }
        if read.with_records {
            state.fleet = fleet;
        }
        if state.releases != releases {
            self.releases_changed.notify_one();
        }
        state.releases = releases;
        // Under the state's lock: no status shows this state beside the last read's result.
        self.background.answered(found, |_| {});
        (found == Found::Modified).then_some(Changed {
            keys: changed,
            revision,
            release: step,
        })
    }

    /// The gray release whose staged candidate this member serves, by the release
    /// records: one in flight (`state: canary`) that chose this member.
    pub(crate) fn staged_for_me(
        &self,
        releases: &BTreeMap<String, serde_json::Value>,
    ) -> Option<String> {
        let member = lock(&self.member).clone()?;
        crate::fleet::records::canary_of(releases, &member)
    }

    /// The release records as last read or watched.
    pub(crate) fn releases(&self) -> BTreeMap<String, serde_json::Value> {
        lock(&self.state).releases.clone()
    }
}

/// An instance's record as shown: its JSON, or `{"unreadable": true}` (also for a value
/// that was over the decode bound, kept empty).
fn fleet_record(raw: &[u8]) -> serde_json::Value {
    if raw.is_empty() {
        unreadable()
    } else {
        instance_record(raw)
    }
}

/// An error of the etcd client read down its chain of causes, each said once: the gRPC
/// status's message, not its debug form.
pub(crate) fn readable(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let mut parts = vec![match e {
        etcd_client::Error::GRpcStatus(status) => status.message().to_owned(),
        other => other.to_string(),
    }];
    let mut cause = match e {
        etcd_client::Error::GRpcStatus(status) => status.source(),
        other => other.source(),
    };
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.retain(|p| !p.is_empty());
    parts.join(": ")
}

fn prefix_name(prefix: &str) -> SourceName {
    SourceName::Etcd {
        key: prefix.to_owned(),
        revision: None,
    }
}

impl Source for Etcd {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        let fetched = {
            let mut state = lock(&self.shared.state);
            let current = Arc::clone(&state.current);
            state.loaded = Some(Arc::clone(&current));
            // What is held back is said of each read anew.
            state.held.clear();
            current
        };
        // A key whose value does not parse fails the merge, naming it: it blocks only
        // itself, like any other bad input. So do two keys of one section, each naming
        // the other.
        let twins = entry::same_section(&fetched.entries, &self.shared.options.prefix);
        let layers = fetched
            .entries
            .iter()
            .map(|entry| {
                let name = SourceName::Etcd {
                    key: entry.key.clone(),
                    revision: Some(entry.mod_revision),
                };
                match (&entry.parsed, twins.get(&entry.key)) {
                    (_, Some(twin)) => Layer::failed(name, twin.clone()),
                    (Ok((data, fingerprint)), None) => {
                        Layer::parsed(name, data.clone(), *fingerprint)
                    }
                    (Err(e), None) => Layer::failed(name, e.clone()),
                }
            })
            .collect();
        Ok(layers)
    }

    /// What was read from etcd at start was rejected: serve the last-known-good cache
    /// instead, as when etcd is down. Only when an error names a key of this prefix, or
    /// no source at all (a missing key): a broken local file is no reason to leave what
    /// etcd holds. The watch goes on; the next change under the prefix is read and tried.
    fn fall_back(&self, why: &Errors) -> bool {
        let shared = &self.shared;
        let prefix = &shared.options.prefix;
        let ours = |e: &Error| match e.source() {
            None => true,
            Some(SourceName::Etcd { key, .. }) => key.starts_with(prefix.as_str()),
            Some(_) => false,
        };
        if !why.iter().any(ours) {
            return false;
        }
        let (rejected, seen) = {
            let state = lock(&shared.state);
            if state.current.from_cache {
                return false;
            }
            (Arc::clone(&state.current), state.seen)
        };
        if !shared.start_from_cache() {
            return false;
        }
        let mut state = lock(&shared.state);
        // The watch stays where it was: nothing up to `seen` is read again.
        state.seen = seen;
        if state.current.revision == rejected.revision {
            // The cache holds that very revision: nothing else to try.
            state.current = rejected;
            shared.background.serving_cache(false);
            return false;
        }
        let rejected = rejected.revision;
        tracing::warn!(prefix = %prefix, revision = rejected, errors = %why, "what etcd held at start was rejected: starting from the last-known-good cache");
        shared.background.fell_back(format!(
            "the prefix at revision {rejected} was rejected at start; serving the last-known-good cache: {why}"
        ));
        true
    }

    /// What `load` returned is served, but for the keys held back: the ACK of its
    /// revision, the NACK kept while keys are held back, and the last-good cache of the
    /// prefix as served (a held-back key with its accepted value).
    fn committed(&self) {
        let served = {
            let mut state = lock(&self.shared.state);
            let Some(loaded) = state.loaded.take() else {
                return;
            };
            let held = std::mem::take(&mut state.held);
            let served = if held.is_empty() {
                loaded
            } else {
                let accepted = state.committed.clone();
                Arc::new(loaded.holding_back(&held, accepted.as_deref()))
            };
            if !served.from_cache {
                // The configuration served, a held-back key at its accepted revision.
                let revision = served.config_revision();
                match state.applied {
                    // Applied already (or the prefix went back: a key deleted, a cluster
                    // restored): not a new change to time.
                    Some(ref mut applied) if applied.revision >= revision => {
                        applied.revision = revision;
                        applied.at = SystemTime::now();
                    }
                    _ => {
                        let applied = state.propagated(revision);
                        metrics::histogram!("eac_fleet_propagation_seconds", "from" => applied.from)
                            .record(applied.took.as_secs_f64());
                        metrics::gauge!("eac_applied_revision").set(revision as f64);
                        state.applied = Some(applied);
                    }
                }
                if held.is_empty() {
                    state.nack = None;
                }
            }
            state.committed = Some(Arc::clone(&served));
            if held.is_empty() {
                self.shared.background.accepted();
            }
            self.shared.background.serving_cache(served.from_cache);
            self.shared.background.details(|details| {
                details.insert("committed_revision".into(), served.revision.into());
            });
            served
        };
        self.shared.cache_committed(served);
    }

    /// Keys of the prefix were rejected: shown in the status (counted once per
    /// revision), the NACK, and held back when the rest is committed.
    fn rejected(&self, inputs: &[(SourceName, Errors)]) {
        let prefix = self.shared.options.prefix.as_str();
        let ours: Vec<(&str, &Errors)> = inputs
            .iter()
            .filter_map(|(input, errors)| match input {
                SourceName::Etcd { key, .. } if key.starts_with(prefix) => {
                    Some((key.as_str(), errors))
                }
                _ => None,
            })
            .collect();
        let Some(errors) =
            Errors::from_vec(ours.iter().flat_map(|(_, e)| e.iter().cloned()).collect())
        else {
            return;
        };
        let (revision, new) = {
            let mut state = lock(&self.shared.state);
            let Some(loaded) = state.loaded.clone() else {
                return;
            };
            state.held = ours.iter().map(|(key, _)| (*key).to_owned()).collect();
            // The revision that last changed a rejected key: a later put of another key
            // is applied, and ACKed, beside it.
            let revision = loaded
                .entries
                .iter()
                .filter(|e| state.held.contains(&e.key))
                .map(|e| e.mod_revision)
                .max()
                .unwrap_or_else(|| loaded.config_revision());
            // Counted once: the same NACK again (another key's put read beside it) is not new.
            let new = state.nack.as_ref().is_none_or(|n| n.revision != revision);
            // What every member and operator reads: what was expected, never a value.
            let told = errors
                .iter()
                .map(|e| e.clone().map_message(crate::validate::without_found_value))
                .collect();
            state.nack = Some(Nack {
                revision,
                at: SystemTime::now(),
                errors: Errors::from_vec(told).unwrap_or_else(|| errors.clone()),
            });
            (revision, new)
        };
        metrics::gauge!("eac_rejected_revision").set(revision as f64);
        if new {
            metrics::counter!("eac_nacks_total").increment(1);
        }
        self.shared.background.rejected(&errors, new);
    }

    fn status(&self) -> Option<SourceStatus> {
        let state = lock(&self.shared.state);
        let mut status = self.shared.background.status();
        status
            .details
            .insert("revision".into(), state.current.revision.into());
        status.details.insert(
            "endpoints".into(),
            serde_json::json!(self.shared.options.endpoints),
        );
        status.details.insert(
            "keys".into(),
            state
                .current
                .entries
                .iter()
                .map(|e| serde_json::json!({"key": e.key, "mod_revision": e.mod_revision}))
                .collect(),
        );
        status
            .details
            .insert("compacted_watches".into(), state.compacted.into());
        let fleet: BTreeMap<String, serde_json::Value> = state
            .fleet
            .iter()
            .map(|(id, raw)| (id.clone(), fleet_record(raw)))
            .collect();
        status
            .details
            .insert("fleet".into(), serde_json::json!(fleet));
        status.details.insert(
            "fleet_view".into(),
            crate::fleet::view::view(
                state.current.config_revision(),
                state.changed_at,
                &fleet,
                &state.releases,
                self.shared.options.stale,
                SystemTime::now(),
            ),
        );
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_renders_key_and_revision() {
        let name = SourceName::Etcd {
            key: "/eac/app/limits".into(),
            revision: Some(42),
        };
        assert_eq!(name.to_string(), "etcd:/eac/app/limits@42");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_s_record_timed_past_what_a_clock_holds_leaves_the_ack_timed_from_receipt() {
        use etcd_client::{Txn, TxnOp};
        const PREFIX: &str = "/eac/ack-times/";
        let server = eac_tests::etcd::EtcdServer::start();
        let mut client = etcd_client::Client::connect([server.endpoint()], None)
            .await
            .unwrap();
        // The configuration and its writer's record in one transaction: one revision.
        let txn = Txn::new().and_then([
            TxnOp::put(format!("{PREFIX}greeting"), r#"{"message": "hi"}"#, None),
            TxnOp::put(
                format!("{PREFIX}{RELEASES}r1"),
                r#"{"kind": "put", "at": 1e19}"#,
                None,
            ),
        ]);
        let revision = client.txn(txn).await.unwrap().header().unwrap().revision();
        let etcd = Etcd::connect(EtcdOptions::new([server.endpoint()], PREFIX))
            .await
            .unwrap();
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        struct Greeting {
            message: String,
        }
        impl crate::EaCSection for Greeting {
            const PATH: &'static str = "greeting";
        }
        let accessor = crate::EaCAccessor::builder()
            .section::<Greeting>()
            .source(etcd.clone())
            .build()
            .unwrap();
        assert_eq!(accessor.load().section::<Greeting>().message, "hi");
        let (applied, nack) = etcd.shared.acknowledged();
        let applied = applied.expect("the revision served is acknowledged");
        assert_eq!(applied.revision, revision);
        assert_eq!(applied.from, "receipt");
        assert!(nack.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_canary_s_read_of_many_staged_keys_over_many_keys_is_linear() {
        use std::sync::atomic::Ordering;

        use etcd_client::{Txn, TxnOp};
        const PREFIX: &str = "/eac/staged-many/";
        const KEYS: usize = 2_000;
        let server = eac_tests::etcd::EtcdServer::start();
        let mut client = etcd_client::Client::connect([server.endpoint()], None)
            .await
            .unwrap();
        let keys = (0..KEYS).map(|n| format!("{PREFIX}k{n:05}"));
        let staged = (0..KEYS).map(|n| format!("{PREFIX}{STAGED}r1/s{n:05}"));
        let all: Vec<String> = keys.chain(staged).collect();
        // etcd takes at most 128 operations in a transaction.
        for chunk in all.chunks(100) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| TxnOp::put(k.as_str(), "{}", None))
                .collect();
            client.txn(Txn::new().and_then(ops)).await.unwrap();
        }
        // The only staged section that is also a configured one: it replaces that one.
        client
            .put(
                format!("{PREFIX}{STAGED}r1/k00000"),
                r#"{"staged": true}"#,
                None,
            )
            .await
            .unwrap();
        client
            .put(
                format!("{PREFIX}{RELEASES}r1"),
                r#"{"kind": "release", "state": "canary", "canaries": ["m"]}"#,
                None,
            )
            .await
            .unwrap();
        let etcd = Etcd::connect(EtcdOptions::new([server.endpoint()], PREFIX))
            .await
            .unwrap();
        *lock(&etcd.shared.member) = Some("m".to_owned());

        let before = entry::SECTIONS_OF.load(Ordering::Relaxed);
        etcd.shared.read_at(0).await.unwrap();
        let looked_at = entry::SECTIONS_OF.load(Ordering::Relaxed) - before;
        // Each name a few times at most; every staged name against every key is 8 M.
        let names = 2 * KEYS as u64 + 1;
        assert!(
            looked_at <= 4 * names,
            "{looked_at} looks for {names} names"
        );

        let state = lock(&etcd.shared.state);
        let entries = &state.current.entries;
        assert_eq!(state.current.staged.as_deref(), Some("r1"));
        assert_eq!(
            entries.len(),
            2 * KEYS,
            "every staged key, every key but the one replaced"
        );
        let replaced = format!("{PREFIX}k00000");
        assert!(entries.iter().all(|e| e.key != replaced));
        let staged = format!("{PREFIX}{STAGED}r1/k00000");
        assert!(entries.iter().any(|e| e.key == staged));
    }
}
