//! A canary inside one process: a new version serves a share of the requests first, the
//! layer in front of the service counts what each version's requests meet, and the
//! [judge] promotes or aborts it.
//!
//! In [`ReloadMode::Canary`](crate::reload::ReloadMode::Canary) a valid change (a file, a
//! remote document, etcd, a refresh) becomes the *canary* instead of the current
//! version: `EaCLayer` (eac-tower), through [`EaCAccessor::canary`](crate::EaCAccessor::canary)
//! and [`Canary::role_of`], gives each request one of the two, sticky by a key (a header, else the client address), so one user sees one
//! version for the whole window. The layer counts every request of each version; it
//! times every canary request's latency and one in 16 of the stable version's (per
//! thread): the stable p99 is taken over that sample. Everything else — `load()`, cells, cached readers,
//! subscribers, `status.version` — stays on the stable version until the canary is
//! promoted; an aborted canary publishes nothing and the same content is not canaried
//! again until a source changes. The judge is the same one a fleet's gray release uses.

mod judge;
mod stats;

pub(crate) use judge::compared;
pub use judge::{Breach, Figures, Thresholds, Verdict, judge};
#[cfg(feature = "etcd")]
pub(crate) use stats::Exported;
pub(crate) use stats::MeterSlot;
pub use stats::RoleStats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind, Errors};
use crate::hash::ContentHash;
use crate::settings::EnvSettings;
use crate::snapshot::{Origin, Snapshot};

/// How a canary runs; read by [`ReloadConfig::from_env`](crate::reload::ReloadConfig::from_env).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CanaryConfig {
    /// The share of requests (by key) the canary serves, 0–1 (default 0.05;
    /// `EAC_CANARY_SHARE`).
    pub share: f64,
    /// How long the canary is judged before it is promoted (default 60 s;
    /// `EAC_CANARY_WINDOW_MS`). With too few requests by then, judging goes on until 30 s
    /// past the window, then the canary is aborted.
    pub window: Duration,
    /// The judge's thresholds (`EAC_CANARY_MIN_REQUESTS`, `EAC_CANARY_MAX_ERROR_RATIO`,
    /// `EAC_CANARY_MAX_ERROR_RATIO_VS_STABLE`, `EAC_CANARY_MAX_LATENCY_RATIO`).
    pub thresholds: Thresholds,
    /// The request header whose value keeps a user on one version
    /// (`EAC_CANARY_KEY_HEADER`); without it (or without the header in a request), the
    /// client's address.
    pub key_header: Option<String>,
}

// Its numbers are never NaN (the settings refuse one): equality is total.
impl Eq for CanaryConfig {}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            share: 0.05,
            window: Duration::from_secs(60),
            thresholds: Thresholds::IN_PROCESS,
            key_header: None,
        }
    }
}

/// How long judging goes on past the window when the canary had too few requests.
pub const GRACE: Duration = Duration::from_secs(30);

impl CanaryConfig {
    /// Reads the `EAC_CANARY_*` variables into `env`'s errors; the defaults for those
    /// unset.
    pub(crate) fn read<V: Fn(&str) -> Option<String>>(env: &mut EnvSettings<V>) -> CanaryConfig {
        let mut config = CanaryConfig::default();
        let fraction = |v: &str| match v.trim().parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
            _ => Err("expected a fraction from 0.0 to 1.0"),
        };
        let ratio = |v: &str| match v.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
            _ => Err("expected a positive number"),
        };
        if let Some(share) = env.parse("EAC_CANARY_SHARE", fraction) {
            config.share = share;
        }
        if let Some(window) = env.millis("EAC_CANARY_WINDOW_MS") {
            config.window = window;
        }
        if let Some(min) = env.parse("EAC_CANARY_MIN_REQUESTS", |v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| "expected a whole number of requests")
        }) {
            config.thresholds.min_requests = min;
        }
        if let Some(max) = env.parse("EAC_CANARY_MAX_ERROR_RATIO", fraction) {
            config.thresholds.max_error_ratio = max;
        }
        if let Some(max) = env.parse("EAC_CANARY_MAX_ERROR_RATIO_VS_STABLE", ratio) {
            config.thresholds.max_error_ratio_vs_stable = max;
        }
        if let Some(max) = env.parse("EAC_CANARY_MAX_LATENCY_RATIO", ratio) {
            config.thresholds.max_latency_ratio = max;
        }
        if let Some(header) = env.parse("EAC_CANARY_KEY_HEADER", |v: &str| {
            let v = v.trim();
            if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                Ok(v.to_ascii_lowercase())
            } else {
                Err("expected a header name (letters, digits, `-`)")
            }
        }) {
            config.key_header = Some(header);
        }
        config
    }
}

/// Which of the two versions served a request while a canary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The current version.
    Stable,
    /// The canary.
    Canary,
}

impl Role {
    /// `"stable"` or `"canary"`, as metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
        }
    }
}

/// One canary: a candidate version serving a share of the requests for a window, with
/// what each version's requests met since it started.
pub struct Canary {
    /// Unique in the process: which canary a thread's cache holds.
    pub(crate) id: u64,
    snapshot: Arc<Snapshot>,
    config: CanaryConfig,
    /// A key whose mixed hash is below this is the canary's.
    threshold: u64,
    started: tokio::time::Instant,
    started_at: SystemTime,
    stable: Arc<RoleStats>,
    canary: Arc<RoleStats>,
    /// Built from what the sources say (else from an operator's overlay).
    pub(crate) from_sources: bool,
}

impl std::fmt::Debug for Canary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canary")
            .field("version", &self.snapshot.version())
            .field("share", &self.config.share)
            .field("window", &self.config.window)
            .finish_non_exhaustive()
    }
}

impl Canary {
    pub(crate) fn new(snapshot: Arc<Snapshot>, config: CanaryConfig, from_sources: bool) -> Canary {
        let threshold = if config.share >= 1.0 {
            u64::MAX
        } else {
            (config.share.max(0.0) * u64::MAX as f64) as u64
        };
        // Never 0: the running canary's id 0 means none runs.
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Canary {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            snapshot,
            config,
            threshold,
            started: tokio::time::Instant::now(),
            started_at: SystemTime::now(),
            stable: Arc::new(RoleStats::exported_as(Role::Stable)),
            canary: Arc::new(RoleStats::exported_as(Role::Canary)),
            from_sources,
        }
    }

    /// Which canary this is: unique in the process (what a per-thread cache of something
    /// derived from a canary is checked against).
    #[inline]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The candidate version the canary serves.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Its version number: new, never reused.
    pub fn version(&self) -> u64 {
        self.snapshot.version()
    }

    /// The content hash of the candidate.
    pub fn hash(&self) -> ContentHash {
        self.snapshot.hash()
    }

    /// How it runs.
    pub fn config(&self) -> &CanaryConfig {
        &self.config
    }

    /// Which version serves a request whose key hashes to `key` (see [`key_of`]): the
    /// same for the same key during this canary.
    #[inline]
    pub fn role_of(&self, key: u64) -> Role {
        // Salted by the version, so that each canary chooses its own users.
        if mix(key ^ self.snapshot.version()) < self.threshold {
            Role::Canary
        } else {
            Role::Stable
        }
    }

    /// What `role`'s requests met so far: where a request of that role is counted, kept
    /// by the request (an `Arc`) until it is answered.
    #[inline]
    pub fn stats(&self, role: Role) -> &Arc<RoleStats> {
        match role {
            Role::Stable => &self.stable,
            Role::Canary => &self.canary,
        }
    }

    /// Adds what each role counted since the last export to the metrics:
    /// `eac_canary_requests_total{role}`, `eac_canary_errors_total{role}` and
    /// `eac_canary_latency_seconds{role}` (each bucket's count at its upper bound). The
    /// guard calls it every tick; the rest is exported when each role's stats drop, after
    /// the last request that held them was counted.
    pub(crate) fn export(&self) {
        self.stable.export();
        self.canary.export();
    }

    /// The judge's verdict now.
    pub fn verdict(&self) -> Verdict {
        judge(
            &self.stable.figures(),
            &self.canary.figures(),
            &self.config.thresholds,
        )
    }

    /// How long it has run (on Tokio's clock).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// What the status shows of it.
    pub fn status(&self) -> CanaryStatus {
        let elapsed = self.elapsed();
        CanaryStatus {
            version: self.version(),
            hash: self.hash(),
            origin: self.snapshot.origin().clone(),
            share: self.config.share,
            started_at: self.started_at,
            window_left: self.config.window.saturating_sub(elapsed),
            stable: self.stable.figures(),
            canary: self.canary.figures(),
            thresholds: self.config.thresholds,
        }
    }
}

/// A running canary as [`Status::canary`](crate::Status::canary) shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct CanaryStatus {
    /// The canary's version.
    pub version: u64,
    /// Its content hash.
    pub hash: ContentHash,
    /// What made it.
    pub origin: Origin,
    /// The share of requests it serves.
    pub share: f64,
    /// When it started.
    #[serde(serialize_with = "crate::json_time::unix_seconds")]
    pub started_at: SystemTime,
    /// How long until it is judged for promotion.
    #[serde(serialize_with = "crate::json_time::millis", rename = "window_left_ms")]
    pub window_left: Duration,
    /// What the stable version's requests met since it started.
    pub stable: Figures,
    /// What its requests met.
    pub canary: Figures,
    /// What it is judged by.
    pub thresholds: Thresholds,
}

/// What decides a fleet's gray release by hand, for the admin routes
/// (`POST release/{id}/promote|abort`): the etcd source registers itself when this
/// instance [joins the fleet](crate::source) (feature `etcd`), and
/// [`EaCAccessor::release_control`](crate::EaCAccessor::release_control) gives it out.
pub trait ReleaseControl: Send + Sync + 'static {
    /// Promotes (`promote`) or aborts release `release` now, as `by` (who asked, for the
    /// record); what it ended as: `promoted: <why>` or `aborted: <why>` (a release
    /// decided already keeps its decision). A release without a record is an
    /// [`ErrorKind::NotFound`] error.
    fn decide<'a>(
        &'a self,
        release: &'a str,
        promote: bool,
        by: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Error>> + Send + 'a>>;
}

/// Hashes a request's key — a header's value, or an address's bytes — for
/// [`Canary::role_of`]: eight bytes at a time (a multiply and a rotate each), the length
/// mixed in, so that a user id of 36 bytes costs a handful of steps, not 36.
#[inline]
pub fn key_of(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(K);
    let mut hash = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word: [u8; 8] = word.try_into().unwrap_or_default();
        hash = step(hash, u64::from_le_bytes(word));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let word = rest
            .iter()
            .rev()
            .fold(0u64, |word, &b| (word << 8) | u64::from(b));
        hash = step(hash, word);
    }
    hash
}

/// Spreads a key over the whole range (splitmix64's finalizer).
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The error a canary's abort is recorded with: the judge's figures, or the operator's
/// word.
pub(crate) fn aborted(why: &str) -> Errors {
    Error::new(ErrorKind::Validation, why.to_owned()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_differ_in_a_byte_or_in_length_hash_apart() {
        let keys: [&[u8]; 8] = [
            b"",
            b"\0",
            b"a",
            b"ab",
            b"ab\0",
            b"user-1234",
            b"user-1235",
            b"0f8fad5b-d9cb-469f-a165-70867728950e",
        ];
        let mut hashes: Vec<u64> = keys.iter().map(|k| key_of(k)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), keys.len());
        assert_eq!(key_of(b"user-1234"), key_of(b"user-1234"));
    }

    #[test]
    fn the_canary_serves_about_its_share_of_keys_and_always_the_same_ones() {
        let snapshot = crate::EaCAccessor::builder().build().unwrap().load_full();
        let config = CanaryConfig {
            share: 0.05,
            ..CanaryConfig::default()
        };
        let canary = Canary::new(snapshot, config, true);
        let n = 20_000;
        let chosen = (0..n)
            .filter(|i| canary.role_of(key_of(format!("user-{i}").as_bytes())) == Role::Canary)
            .count();
        // 5% of 20,000 is 1,000, sd ~31: within 5 sd either side.
        assert!((845..=1155).contains(&chosen), "{chosen} of {n}");
        for i in 0..100 {
            let key = key_of(format!("user-{i}").as_bytes());
            assert_eq!(canary.role_of(key), canary.role_of(key));
        }
    }

    #[test]
    fn every_bad_canary_variable_is_reported_at_once() {
        let mut env = EnvSettings::from_vars(|name| match name {
            "EAC_CANARY_SHARE" => Some("5%".into()),
            "EAC_CANARY_WINDOW_MS" => Some("1m".into()),
            "EAC_CANARY_MAX_LATENCY_RATIO" => Some("-1".into()),
            "EAC_CANARY_KEY_HEADER" => Some("X-User".into()),
            _ => None,
        });
        let config = CanaryConfig::read(&mut env);
        assert_eq!(config.key_header.as_deref(), Some("x-user"));
        let errors = env.finish(()).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors}");
    }
}
