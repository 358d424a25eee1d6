//! What one role's requests met, counted from many threads at once: an atomic add or two
//! per request (the request, a latency bucket when its latency was timed, and, for a
//! 5xx, the error count).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::judge::Figures;
use crate::sync::lock;

/// Latency buckets: four per power of two of microseconds (each about 19% wide), from
/// 1 µs to about an hour; longer lands in the last.
const BUCKETS: usize = 128;

/// Requests, 5xx answers and a latency histogram of one role (stable or canary) during
/// one canary's window.
///
/// Every request is counted; the histogram holds the latencies that were timed, which
/// may be a sample of the requests (the p99 is taken over those).
#[derive(Debug)]
pub struct RoleStats {
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: Box<[AtomicU64; BUCKETS]>,
    /// For an in-process canary's roles: the role they are exported as, and what the
    /// metrics have of them already. The rest is exported when they drop, after the last
    /// request that held them was counted.
    exported: Option<(super::Role, Mutex<Exported>)>,
}

impl Default for RoleStats {
    fn default() -> Self {
        RoleStats {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: Box::new([const { AtomicU64::new(0) }; BUCKETS]),
            exported: None,
        }
    }
}

impl Drop for RoleStats {
    fn drop(&mut self) {
        if let Some((role, exported)) = self.exported.take() {
            let mut exported = exported.into_inner().unwrap_or_else(|e| e.into_inner());
            exported.export(self, role);
        }
    }
}

impl RoleStats {
    /// Stats of an in-process canary's `role`, exported to the metrics by
    /// [`export`](RoleStats::export) and, for the rest, when they drop.
    pub(crate) fn exported_as(role: super::Role) -> RoleStats {
        let mut stats = RoleStats::default();
        stats.exported = Some((role, Mutex::default()));
        stats
    }

    /// Adds what was counted since the last export to the metrics, if these stats are
    /// [exported](RoleStats::exported_as).
    pub(crate) fn export(&self) {
        if let Some((role, exported)) = &self.exported {
            lock(exported).export(self, *role);
        }
    }

    /// Counts one request answered after `latency`, with a 5xx status when `error`.
    #[inline]
    pub fn record(&self, latency: Duration, error: bool) {
        self.buckets[bucket(latency)].fetch_add(1, Ordering::Relaxed);
        self.count(error);
    }

    /// Counts one request whose latency was not timed, with a 5xx status when `error`.
    #[inline]
    pub fn count(&self, error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The latency histogram so far: each bucket's upper bound and count.
    pub fn histogram(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| (upper_bound(i), b.load(Ordering::Relaxed)))
    }

    /// The latency buckets that counted a request, by index, and the errors: what a
    /// fleet member reports of a gray release (whose every request is timed), merged by
    /// the judge with [`RoleStats::from_counts`].
    pub fn counts(&self) -> (Vec<(usize, u64)>, u64) {
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| (i, b.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        (buckets, self.errors.load(Ordering::Relaxed))
    }

    /// Stats holding the sum of several members' [`counts`](RoleStats::counts) (each
    /// request in a bucket); a bucket index out of range counts in the last bucket.
    pub fn from_counts<'a>(
        members: impl IntoIterator<Item = (&'a [(usize, u64)], u64)>,
    ) -> RoleStats {
        let stats = RoleStats::default();
        for (buckets, errors) in members {
            for &(i, count) in buckets {
                stats.buckets[i.min(BUCKETS - 1)].fetch_add(count, Ordering::Relaxed);
                stats.requests.fetch_add(count, Ordering::Relaxed);
            }
            stats.errors.fetch_add(errors, Ordering::Relaxed);
        }
        stats
    }

    /// The figures so far: requests, errors, p99 (a bucket's upper bound, over the
    /// requests timed).
    pub fn figures(&self) -> Figures {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let timed: u64 = counts.iter().sum();
        // Read after the buckets: a request counted in one is counted here too.
        let requests = self.requests.load(Ordering::Relaxed).max(timed);
        let p99 = (timed > 0).then(|| {
            // The smallest bucket holding the 99th percentile request.
            let rank = timed - timed / 100;
            let mut seen = 0;
            let at = counts
                .iter()
                .position(|c| {
                    seen += c;
                    seen >= rank
                })
                .unwrap_or(BUCKETS - 1);
            upper_bound(at)
        });
        let errors = self.errors.load(Ordering::Relaxed).min(requests);
        Figures::new(requests, errors, p99)
    }
}

/// What of one role's stats was exported to the `metrics` facade already.
#[derive(Debug, Default)]
pub(crate) struct Exported {
    requests: u64,
    errors: u64,
    buckets: Vec<u64>,
}

impl Exported {
    /// Exports what `stats` counted since the last call, as `role`'s:
    /// `eac_canary_requests_total{role}`, `eac_canary_errors_total{role}` and
    /// `eac_canary_latency_seconds{role}` (each timed request's bucket at its upper
    /// bound). The same names in both scopes: an in-process canary's two roles, a fleet
    /// member's role in a gray release.
    pub(crate) fn export(&mut self, stats: &RoleStats, role: super::Role) {
        let label = role.as_str();
        let latency = metrics::histogram!("eac_canary_latency_seconds", "role" => label);
        for (j, (upper, count)) in stats.histogram().enumerate() {
            if self.buckets.len() <= j {
                self.buckets.push(0);
            }
            let new = count.saturating_sub(self.buckets[j]);
            if new > 0 {
                latency.record_many(upper.as_secs_f64(), new as usize);
                self.buckets[j] = count;
            }
        }
        let figures = stats.figures();
        let new = figures.requests.saturating_sub(self.requests);
        if new > 0 {
            metrics::counter!("eac_canary_requests_total", "role" => label).increment(new);
            self.requests = figures.requests;
        }
        let new = figures.errors.saturating_sub(self.errors);
        if new > 0 {
            metrics::counter!("eac_canary_errors_total", "role" => label).increment(new);
            self.errors = figures.errors;
        }
    }
}

/// Where the layer counts every request while a fleet's gray release runs on this
/// instance (the member's role is the release's business, not the request's).
#[derive(Debug, Default)]
pub(crate) struct MeterSlot {
    stats: ArcSwapOption<RoleStats>,
    /// Whether one is set: the one load a request pays when none is.
    on: AtomicBool,
}

impl MeterSlot {
    /// Whether one is set.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// The meter, if one is set: one relaxed load when none is.
    #[inline]
    pub(crate) fn get(&self) -> Option<Arc<RoleStats>> {
        if !self.on.load(Ordering::Relaxed) {
            return None;
        }
        self.stats.load_full()
    }

    /// A fresh meter from now on.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn start(&self) -> Arc<RoleStats> {
        let stats = Arc::new(RoleStats::default());
        self.stats.store(Some(Arc::clone(&stats)));
        self.on.store(true, Ordering::SeqCst);
        stats
    }

    /// No meter any more.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
        self.stats.store(None);
    }
}

/// The bucket of a latency: four per power of two of microseconds.
#[inline]
fn bucket(latency: Duration) -> usize {
    let micros = (latency.as_micros() as u64).max(1);
    let exp = 63 - micros.leading_zeros() as usize;
    let sub = if exp >= 2 {
        (micros >> (exp - 2)) as usize & 3
    } else {
        (micros as usize) & 3
    };
    (exp * 4 + sub).min(BUCKETS - 1)
}

/// The largest latency bucket `i` holds.
fn upper_bound(i: usize) -> Duration {
    let (exp, sub) = (i / 4, (i % 4) as u64);
    let micros = if exp >= 2 {
        (4 + sub + 1) << (exp - 2)
    } else {
        (1u64 << exp) + 1
    };
    Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_with_latency_and_bound_it_within_a_fifth() {
        let mut last = 0;
        for micros in [1u64, 2, 3, 5, 10, 100, 999, 1_000, 50_000, 3_000_000] {
            let b = bucket(Duration::from_micros(micros));
            assert!(b >= last, "{micros} µs went to bucket {b} after {last}");
            last = b;
            let upper = upper_bound(b).as_micros() as u64;
            assert!(
                upper >= micros,
                "{micros} µs above its bucket's bound {upper}"
            );
            assert!(
                upper as f64 <= micros as f64 * 1.5 + 2.0,
                "{micros} µs: bound {upper}"
            );
        }
        assert_eq!(bucket(Duration::from_secs(1_000_000)), BUCKETS - 1);
    }

    #[test]
    fn figures_count_requests_and_errors_and_find_the_p99() {
        let stats = RoleStats::default();
        assert_eq!(stats.figures(), Figures::new(0, 0, None));
        for i in 0..1000 {
            // 990 fast, 10 slow: the p99 is among the fast ones.
            let latency = if i < 990 { 1_000 } else { 200_000 };
            stats.record(Duration::from_micros(latency), i % 100 == 0);
        }
        let figures = stats.figures();
        assert_eq!((figures.requests, figures.errors), (1000, 10));
        let p99 = figures.p99.unwrap();
        assert!(
            p99 >= Duration::from_micros(1_000) && p99 < Duration::from_micros(1_300),
            "{p99:?}"
        );
        // 20 slow of 1000: now the p99 is a slow one.
        for _ in 0..10 {
            stats.record(Duration::from_millis(200), false);
        }
        assert!(stats.figures().p99.unwrap() >= Duration::from_millis(200));
    }

    #[test]
    fn every_request_counts_and_the_p99_is_taken_over_those_timed() {
        let stats = RoleStats::default();
        // 1600 requests, one in 16 timed (as the layer times the stable version's).
        for i in 0..1600 {
            let error = i % 50 == 0;
            if i % 16 == 0 {
                let slow = i % 800 == 0;
                stats.record(Duration::from_millis(if slow { 300 } else { 2 }), error);
            } else {
                stats.count(error);
            }
        }
        let figures = stats.figures();
        assert_eq!((figures.requests, figures.errors), (1600, 32));
        // 2 of the 100 timed were slow: the p99 is a slow one.
        assert!(figures.p99.unwrap() >= Duration::from_millis(300));
        let (buckets, errors) = stats.counts();
        assert_eq!(buckets.iter().map(|(_, c)| c).sum::<u64>(), 100);
        assert_eq!(errors, 32);
    }
}
