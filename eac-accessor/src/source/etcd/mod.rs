//! An etcd v3 prefix as a source, watched: one configuration for a fleet of instances.
//!
//! Feature `etcd` (never a default: building the gRPC client needs `protoc`).
//!
//! # Layouts
//!
//! - **Sections** (the default): every key under the prefix is a section named by the
//!   rest of the key — `/eac/app/limits` holds the `limits` section as JSON; a key ending
//!   in `.toml`, `.yaml`/`.yml` or `.json` is read in that format, the extension not part
//!   of the name; `/` nests (`/eac/app/server/http` is `server.http`).
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
//! of the prefix or failed watch) and `eac_source_serving_cache`.
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

mod read;
mod watch;

pub use watch::EtcdWatch;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use etcd_client::{Client, ConnectOptions};

use super::format::Format;
use super::last_good::LastGood;
use super::limits::{ParseLimits, SizeCap};
use super::status::SourceStatus;
use super::{Dict, Layer, Source};
use crate::error::{Error, ErrorKind, Errors, SourceName};

/// The name part (after the prefix) under which eac keeps one record per instance.
pub(crate) const INSTANCES: &str = ".instances/";

/// Where and how to reach etcd, and what to read there.
///
/// ```
/// use std::time::Duration;
/// use eac_accessor::source::{EtcdOptions, SizeCap};
///
/// let options = EtcdOptions::new(["http://10.0.0.1:2379", "http://10.0.0.2:2379"], "/eac/app/")
///     .keep_alive(Duration::from_secs(2), Duration::from_secs(2))
///     .max_value_size(SizeCap::mib(1));
/// assert_eq!(options.prefix(), "/eac/app/");
/// ```
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    endpoints: Vec<String>,
    pub(crate) prefix: String,
    document: Option<String>,
    connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    keep_alive: (Duration, Duration),
    pub(crate) backoff: (Duration, Duration),
    max_value: SizeCap,
    max_total: SizeCap,
    limits: ParseLimits,
    cache: Option<LastGood>,
}

impl EtcdOptions {
    /// Reads every key under `prefix` (sections layout) from the cluster at `endpoints`
    /// (`http://host:port`; a bare `host:port` means plain HTTP).
    ///
    /// Defaults: connect timeout 2 s, request timeout 5 s, keep-alive ping every 2 s that
    /// must be answered within 2 s, reconnect backoff from 100 ms doubling to 5 s, values
    /// capped at 16 MiB each and 64 MiB in all.
    pub fn new(
        endpoints: impl IntoIterator<Item = impl Into<String>>,
        prefix: impl Into<String>,
    ) -> EtcdOptions {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: prefix.into(),
            document: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            keep_alive: (Duration::from_secs(2), Duration::from_secs(2)),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            max_value: SizeCap::FILE,
            max_total: SizeCap::mib(64),
            limits: ParseLimits::default(),
            cache: None,
        }
    }

    /// Reads one key, `<prefix><name>`, as the whole document (document layout), in the
    /// format of its extension, JSON without one.
    pub fn document(mut self, name: impl Into<String>) -> EtcdOptions {
        self.document = Some(name.into());
        self
    }

    /// The time allowed to open a connection, and to complete each read.
    pub fn timeouts(mut self, connect: Duration, request: Duration) -> EtcdOptions {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// HTTP/2 keep-alive: a ping every `interval`, answered within `timeout`, or the
    /// connection is dropped and the source reported down. A hung server is noticed
    /// within about `interval + timeout`.
    pub fn keep_alive(mut self, interval: Duration, timeout: Duration) -> EtcdOptions {
        self.keep_alive = (interval, timeout);
        self
    }

    /// Reconnect backoff: the first wait after a failure, doubled per further failure up
    /// to `max`, each drawn at random in `[wait/2, wait]`.
    pub fn backoff(mut self, base: Duration, max: Duration) -> EtcdOptions {
        self.backoff = (base, max);
        self
    }

    /// The largest value accepted in one key (default 16 MiB); a larger one is rejected
    /// with an [`ErrorKind::Limit`] error naming the key.
    pub fn max_value_size(mut self, cap: SizeCap) -> EtcdOptions {
        self.max_value = cap;
        self
    }

    /// The most bytes of keys and values the configuration under the prefix may hold in
    /// all (default 64 MiB). The prefix is read in pages, and a read that would go past
    /// the cap stops there and fails with an [`ErrorKind::Limit`] error naming the prefix
    /// and the cap. eac's own records (`<prefix>.…`) do not count: their values are never
    /// read for the configuration.
    pub fn max_total_size(mut self, cap: SizeCap) -> EtcdOptions {
        self.max_total = cap;
        self
    }

    /// Parse budgets for each value (depth, values, YAML aliases).
    pub fn limits(mut self, limits: ParseLimits) -> EtcdOptions {
        self.limits = limits;
        self
    }

    /// Keeps the last published state of the prefix in `cache` (written after each
    /// publish, only once it passed every check), and starts from it when etcd cannot be
    /// read at [`Etcd::connect`]; the watch then reads the cluster as soon as it answers.
    pub fn cache(mut self, cache: LastGood) -> EtcdOptions {
        self.cache = Some(cache);
        self
    }

    /// The prefix read.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoints, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }
}

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
    /// Instance id → its record.
    fleet: BTreeMap<String, serde_json::Value>,
    status: SourceStatus,
}

/// The configuration keys of the prefix at one revision.
#[derive(Debug)]
pub(crate) struct Fetched {
    revision: i64,
    entries: Vec<Entry>,
    /// Read from the last-known-good cache, not from the cluster.
    from_cache: bool,
}

#[derive(Debug)]
struct Entry {
    key: String,
    mod_revision: i64,
    /// The value's text, for the cache (empty when it did not parse).
    text: Arc<str>,
    /// A hash of the value as read: a key rewritten on another cluster may come back at
    /// the same revision with another value.
    value_hash: u64,
    parsed: Result<(Dict, u64), Error>,
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
            etcd.shared.note_error(&e);
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
                Error::new(ErrorKind::Io, format!("cannot use the endpoints: {e}"))
                    .with_source(name.clone())
            })?;
        let status = SourceStatus::new("etcd", name.to_string());
        Ok(Shared {
            options,
            client,
            state: Mutex::new(State {
                current: Arc::new(Fetched {
                    revision: 0,
                    entries: Vec::new(),
                    from_cache: false,
                }),
                loaded: None,
                seen: 0,
                compacted: 0,
                fleet: BTreeMap::new(),
                status,
            }),
        })
    }

    fn name(&self) -> SourceName {
        prefix_name(&self.options.prefix)
    }

    fn io_error(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Io, format!("{what}: {e}")).with_source(self.name())
    }

    /// Reads the prefix at `revision` (0: the latest) and keeps it; returns the keys that
    /// changed since the state held before, if any.
    async fn read_at(&self, revision: i64) -> Result<Option<(Vec<String>, i64)>, Error> {
        lock(&self.state).status.last_fetch = Some(SystemTime::now());
        let read = self.read_pages(revision).await?;
        Ok(self.store(read, revision == 0))
    }

    /// Keeps what a read found; returns the configuration keys that changed, if any. A
    /// read of the latest state (`latest`) is all there is up to its revision: the watch
    /// goes on from there, even when that is below what it saw (a cluster restored from a
    /// backup, or a new one at the same address).
    fn store(&self, read: read::Read, latest: bool) -> Option<(Vec<String>, i64)> {
        let revision = read.revision;
        let mut entries = Vec::new();
        for raw in &read.config {
            if let Key::Config(name) = self.classify(&raw.key) {
                entries.push(self.entry(name, &raw.key, raw.value.as_deref(), raw.mod_revision));
            }
        }
        let mut fleet = BTreeMap::new();
        for raw in &read.instances {
            if let Key::Instance(id) = self.classify(&raw.key) {
                let record = raw
                    .value
                    .as_deref()
                    .map_or_else(unreadable, instance_record);
                fleet.insert(id.to_owned(), record);
            }
        }
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
        let first = state.current.revision == 0 || state.current.from_cache;
        state.current = Arc::new(Fetched {
            revision,
            entries,
            from_cache: false,
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
        state.fleet = fleet;
        let now = SystemTime::now();
        let status = &mut state.status;
        status.up = true;
        status.last_success = Some(now);
        status.last_error = None;
        let result = if changed.is_empty() && !first {
            status.not_modified += 1;
            "not_modified"
        } else {
            status.modified += 1;
            "modified"
        };
        status.last_result = Some(result);
        record(status, Some(result));
        (result == "modified").then_some((changed, revision))
    }

    fn classify<'k>(&self, key: &'k [u8]) -> Key<'k> {
        let Some(rest) = key.strip_prefix(self.options.prefix.as_bytes()) else {
            return Key::Ignored;
        };
        if let Some(id) = rest.strip_prefix(INSTANCES.as_bytes()) {
            return std::str::from_utf8(id).map_or(Key::Ignored, Key::Instance);
        }
        if rest.starts_with(b".") || rest.is_empty() {
            return Key::Ignored;
        }
        let Ok(rest) = std::str::from_utf8(rest) else {
            return Key::Config(None);
        };
        match &self.options.document {
            Some(doc) if doc != rest => Key::Ignored,
            _ => Key::Config(Some(rest)),
        }
    }

    /// One configuration key; `value` is `None` when it was over the decode bound, and
    /// so never read.
    fn entry(
        &self,
        name: Option<&str>,
        key: &[u8],
        value: Option<&[u8]>,
        mod_revision: i64,
    ) -> Entry {
        let key = String::from_utf8_lossy(key).into_owned();
        let source = SourceName::Etcd {
            key: key.clone(),
            revision: Some(mod_revision),
        };
        let parsed = match (name, value) {
            (None, _) => {
                Err(Error::new(ErrorKind::Parse, "the key is not UTF-8").with_source(source))
            }
            (Some(_), None) => Err(self.options.max_value.exceeded(&source)),
            (Some(name), Some(value)) => self.parse(name, value, &source),
        };
        let text = match (&parsed, value) {
            (Ok(_), Some(value)) => Arc::from(String::from_utf8_lossy(value)),
            _ => Arc::from(""),
        };
        let value_hash = value.map_or(0, xxhash_rust::xxh3::xxh3_64);
        Entry {
            key,
            mod_revision,
            text,
            value_hash,
            parsed,
        }
    }

    /// Takes the cached state as the current one; false when there is no usable cache.
    fn start_from_cache(&self) -> bool {
        let Some(cache) = &self.options.cache else {
            return false;
        };
        let Some((_, text)) = cache.load() else {
            return false;
        };
        let cached: Cached = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(cache = %cache.path().display(), error = %e, "etcd cache skipped: not a cached prefix");
                return false;
            }
        };
        if cached.prefix != self.options.prefix {
            tracing::warn!(cache = %cache.path().display(), cached = cached.prefix, "etcd cache skipped: it holds another prefix");
            return false;
        }
        let entries = cached
            .keys
            .iter()
            .filter_map(|k| match self.classify(k.key.as_bytes()) {
                Key::Config(name) => Some(self.entry(
                    name,
                    k.key.as_bytes(),
                    Some(k.value.as_bytes()),
                    k.mod_revision,
                )),
                _ => None,
            })
            .collect();
        let mut state = lock(&self.state);
        state.current = Arc::new(Fetched {
            revision: cached.revision,
            entries,
            from_cache: true,
        });
        state.seen = cached.revision;
        state.status.serving_cache = true;
        record(&state.status, None);
        true
    }

    /// Writes `fetched` to the cache, when there is one and it came from the cluster.
    fn cache(&self, fetched: &Fetched) {
        let Some(cache) = &self.options.cache else {
            return;
        };
        if fetched.from_cache {
            return;
        }
        let cached = Cached {
            prefix: self.options.prefix.clone(),
            revision: fetched.revision,
            keys: fetched
                .entries
                .iter()
                .map(|e| CachedKey {
                    key: e.key.clone(),
                    mod_revision: e.mod_revision,
                    value: e.text.to_string(),
                })
                .collect(),
        };
        let text = serde_json::to_string(&cached).unwrap_or_default();
        // Over the cache's cap, `store` keeps the previous cache (the loader would
        // refuse the new one): said here as a warning.
        if let Err(e) = cache.store(Format::Json, &text) {
            tracing::warn!(error = %e, "etcd: cannot write the last-known-good cache");
        }
    }

    /// Parses one value into the document it contributes.
    fn parse(&self, name: &str, value: &[u8], source: &SourceName) -> Result<(Dict, u64), Error> {
        let cap = self.options.max_value;
        if value.len() as u64 > cap.bytes() {
            return Err(cap.exceeded(source));
        }
        let text = std::str::from_utf8(value).map_err(|e| {
            Error::new(
                ErrorKind::Parse,
                format!("the value is not UTF-8 (byte {})", e.valid_up_to()),
            )
            .with_source(source.clone())
        })?;
        let (stem, format) = split_extension(name);
        let data = format
            .parse(text, &self.options.limits)
            .map_err(|(kind, message)| Error::new(kind, message).with_source(source.clone()))?;
        let data = if self.options.document.is_some() {
            data
        } else {
            let mut segments = stem.split('/').rev();
            if stem.split('/').any(str::is_empty) {
                return Err(Error::new(
                    ErrorKind::Parse,
                    "the key does not name a section: expected `<prefix>section` or `<prefix>a/b`",
                )
                .with_source(source.clone()));
            }
            let mut data = data;
            for segment in segments.by_ref() {
                let mut outer = Dict::new();
                outer.insert(segment.to_owned(), serde_json::Value::Object(data));
                data = outer;
            }
            data
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(value);
        Ok((data, h.digest()))
    }

    fn note_error(&self, error: &Error) {
        let mut state = lock(&self.state);
        let status = &mut state.status;
        status.up = false;
        status.errors += 1;
        status.last_result = Some("error");
        status.last_error = Some(error.to_string());
        record(status, Some("error"));
    }

    fn note_up(&self) {
        let mut state = lock(&self.state);
        state.status.up = true;
        state.status.last_success = Some(SystemTime::now());
        state.status.last_error = None;
        record(&state.status, None);
    }
}

/// The cache file's document: the configuration keys of the prefix at one revision.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    prefix: String,
    revision: i64,
    keys: Vec<CachedKey>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedKey {
    key: String,
    mod_revision: i64,
    value: String,
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

enum Key<'k> {
    /// A configuration key, by its name after the prefix (`None`: not UTF-8).
    Config(Option<&'k str>),
    /// An instance's record, by its id.
    Instance(&'k str),
    Ignored,
}

/// `limits.toml` → (`limits`, TOML); `limits` → (`limits`, JSON).
fn split_extension(name: &str) -> (&str, Format) {
    if let Some((stem, ext)) = name.rsplit_once('.')
        && !stem.is_empty()
        && !ext.contains('/')
    {
        let format = match ext.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        };
        if let Some(format) = format {
            return (stem, format);
        }
    }
    (name, Format::Json)
}

fn instance_record(value: &[u8]) -> serde_json::Value {
    serde_json::from_slice(value).unwrap_or_else(|_| unreadable())
}

fn unreadable() -> serde_json::Value {
    serde_json::json!({"unreadable": true})
}

fn prefix_name(prefix: &str) -> SourceName {
    SourceName::Etcd {
        key: prefix.to_owned(),
        revision: None,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Source for Etcd {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        let fetched = {
            let mut state = lock(&self.shared.state);
            let current = Arc::clone(&state.current);
            state.loaded = Some(Arc::clone(&current));
            current
        };
        let mut layers = Vec::with_capacity(fetched.entries.len());
        let mut errors = Vec::new();
        for entry in &fetched.entries {
            match &entry.parsed {
                Ok((data, fingerprint)) => layers.push(Layer::parsed(
                    SourceName::Etcd {
                        key: entry.key.clone(),
                        revision: Some(entry.mod_revision),
                    },
                    data.clone(),
                    *fingerprint,
                )),
                Err(e) => errors.push(e.clone()),
            }
        }
        if errors.is_empty() {
            Ok(layers)
        } else {
            Err(errors)
        }
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
            state.status.serving_cache = false;
            return false;
        }
        let rejected = rejected.revision;
        tracing::warn!(prefix = %prefix, revision = rejected, errors = %why, "what etcd held at start was rejected: starting from the last-known-good cache");
        state.status.last_error = Some(format!(
            "the prefix at revision {rejected} was rejected at start; serving the last-known-good cache: {why}"
        ));
        true
    }

    fn committed(&self) {
        let loaded = {
            let mut state = lock(&self.shared.state);
            let Some(loaded) = state.loaded.take() else {
                return;
            };
            state.status.serving_cache = loaded.from_cache;
            record(&state.status, None);
            state
                .status
                .details
                .insert("committed_revision".into(), loaded.revision.into());
            loaded
        };
        self.shared.cache(&loaded);
    }

    fn status(&self) -> Option<SourceStatus> {
        let state = lock(&self.shared.state);
        let mut status = state.status.clone();
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
        status
            .details
            .insert("fleet".into(), serde_json::json!(state.fleet));
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_choose_the_format_and_leave_the_name() {
        assert_eq!(split_extension("limits"), ("limits", Format::Json));
        assert_eq!(split_extension("limits.toml"), ("limits", Format::Toml));
        assert_eq!(split_extension("a/b.yml"), ("a/b", Format::Yaml));
        assert_eq!(split_extension("v1.2"), ("v1.2", Format::Json));
    }

    #[test]
    fn provenance_renders_key_and_revision() {
        let name = SourceName::Etcd {
            key: "/eac/app/limits".into(),
            revision: Some(42),
        };
        assert_eq!(name.to_string(), "etcd:/eac/app/limits@42");
    }
}
