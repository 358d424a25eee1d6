//! The options of an etcd source: endpoints, timeouts, keep-alive, backoff, caps, the
//! layout and the last-known-good cache.

use std::time::Duration;

use crate::source::{LastGood, ParseLimits, SizeCap};

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
    pub(super) endpoints: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) document: Option<String>,
    pub(super) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(super) keep_alive: (Duration, Duration),
    pub(crate) backoff: (Duration, Duration),
    pub(super) max_value: SizeCap,
    pub(super) max_total: SizeCap,
    pub(super) limits: ParseLimits,
    pub(super) cache: Option<LastGood>,
    pub(crate) stale: Duration,
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
            stale: Duration::from_secs(5),
        }
    }

    /// How long a fleet member may be behind the prefix's latest revision before the
    /// fleet view calls it `STALE` rather than `SYNCING` (default 5 s; live_server reads
    /// `EAC_FLEET_STALE_MS`).
    pub fn stale_after(mut self, window: Duration) -> EtcdOptions {
        self.stale = window;
        self
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
    /// with an [`ErrorKind::Limit`](crate::ErrorKind::Limit) error naming the key.
    pub fn max_value_size(mut self, cap: SizeCap) -> EtcdOptions {
        self.max_value = cap;
        self
    }

    /// The most bytes of keys and values the configuration under the prefix may hold in
    /// all (default 64 MiB). The prefix is read in pages, and a read that would go past
    /// the cap stops there and fails with an [`ErrorKind::Limit`](crate::ErrorKind::Limit) error naming the prefix
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
    /// read at [`Etcd::connect`](super::Etcd::connect); the watch then reads the cluster as soon as it answers.
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
