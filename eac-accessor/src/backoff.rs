//! Exponential backoff with jitter: the one mechanism behind the reload throttle, a
//! remote's poll schedule and the etcd watch's reconnects.
//!
//! A [`Backoff`] counts failures; each one doubles its step, from `base` up to `max`.
//! The caller draws its wait within that step: full jitter (`[0, step]`) for the
//! throttle, above the normal interval for the poller, `[step/2, step]` for etcd.

use std::time::Duration;

/// A step that starts at `base` and doubles per failure up to `max`, and the random
/// waits drawn within it.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

/// Doublings past this change nothing a person would wait for (`base × 2²⁰`).
const MAX_DOUBLINGS: u32 = 20;

impl Backoff {
    /// A backoff from `base` up to `max`, its jitter seeded at random: two processes
    /// started together do not retry in step.
    pub(crate) fn new(base: Duration, max: Duration) -> Backoff {
        Backoff::with_rng(base, max, fastrand::Rng::new())
    }

    /// Like [`new`](Backoff::new), its jitter seeded with `seed`: the same waits each time.
    #[cfg_attr(not(feature = "http"), allow(dead_code))] // the poll schedule's
    pub(crate) fn with_seed(base: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff::with_rng(base, max, fastrand::Rng::with_seed(seed))
    }

    fn with_rng(base: Duration, max: Duration, rng: fastrand::Rng) -> Backoff {
        Backoff {
            base,
            max,
            failures: 0,
            rng,
        }
    }

    /// The longest step.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))] // the etcd watch's
    pub(crate) fn max(&self) -> Duration {
        self.max
    }

    /// Forgets the failures: the next step is `base` again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// Counts a failure and returns its step: `base × 2^(failures − 1)`, at most `max`.
    pub(crate) fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(MAX_DOUBLINGS);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// Counts a failure and returns a uniform random wait in `[0, step]` (full jitter).
    pub(crate) fn full_jitter(&mut self) -> Duration {
        let step = self.fail();
        self.between(Duration::ZERO, step)
    }

    /// Counts a failure and returns a uniform random wait in `[step/2, step]`: never
    /// much shorter than the step, still spread.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))] // the etcd watch's
    pub(crate) fn equal_jitter(&mut self) -> Duration {
        let step = self.fail();
        self.between(step / 2, step)
    }

    /// A uniform random wait in `[low, high]`; `low` when `high` is not above it.
    pub(crate) fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = u64::try_from(high.saturating_sub(low).as_nanos()).unwrap_or(u64::MAX);
        low.saturating_add(Duration::from_nanos(self.rng.u64(0..=span)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(1600);

    #[test]
    fn each_failure_doubles_the_step_up_to_the_max() {
        let mut backoff = Backoff::with_seed(BASE, MAX, 7);
        let steps: Vec<u64> = (0..8).map(|_| backoff.fail().as_millis() as u64).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1600, 1600, 1600, 1600]);
        // Many failures later: still the max, no overflow.
        for _ in 0..10_000 {
            assert_eq!(backoff.fail(), MAX);
        }
        let mut huge = Backoff::with_seed(Duration::MAX, Duration::MAX, 7);
        assert_eq!(huge.fail(), Duration::MAX);
        assert_eq!(huge.fail(), Duration::MAX);
    }

    #[test]
    fn reset_starts_again_at_the_base() {
        let mut backoff = Backoff::with_seed(BASE, MAX, 7);
        for _ in 0..5 {
            backoff.fail();
        }
        backoff.reset();
        assert_eq!(backoff.fail(), BASE);
        assert_eq!(backoff.fail(), BASE * 2);
    }

    #[test]
    fn full_jitter_waits_within_zero_and_the_step_and_spreads() {
        let mut backoff = Backoff::with_seed(BASE, MAX, 7);
        let mut waits = Vec::new();
        for failures in 1..=200u32 {
            let step = (BASE * 2u32.pow((failures - 1).min(10))).min(MAX);
            let wait = backoff.full_jitter();
            assert!(
                wait <= step,
                "after {failures} failures: {wait:?} > {step:?}"
            );
            waits.push(wait);
        }
        // Spread over the whole range at the max, not a constant.
        assert!(waits[10..].iter().any(|w| *w < MAX / 4), "{waits:?}");
        assert!(waits[10..].iter().any(|w| *w > MAX * 3 / 4), "{waits:?}");
    }

    #[test]
    fn equal_jitter_waits_within_half_the_step_and_the_step() {
        let mut backoff = Backoff::with_seed(BASE, MAX, 7);
        for failures in 1..=50u32 {
            let step = (BASE * 2u32.pow((failures - 1).min(10))).min(MAX);
            let wait = backoff.equal_jitter();
            assert!(
                wait >= step / 2 && wait <= step,
                "after {failures} failures: {wait:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
    }

    #[test]
    fn between_stays_in_its_bounds_and_an_empty_range_is_its_low_end() {
        let mut backoff = Backoff::new(BASE, MAX);
        let (low, high) = (Duration::from_millis(80), Duration::from_millis(120));
        for _ in 0..1000 {
            let wait = backoff.between(low, high);
            assert!(wait >= low && wait <= high, "{wait:?}");
        }
        assert_eq!(backoff.between(low, low), low);
        assert_eq!(backoff.between(high, low), high);
        assert_eq!(
            backoff.between(Duration::ZERO, Duration::ZERO),
            Duration::ZERO
        );
        // A range wider than u64 nanoseconds does not overflow.
        assert!(backoff.between(Duration::ZERO, Duration::MAX) <= Duration::MAX);
    }

    #[test]
    fn a_seed_replays_its_waits_and_two_random_seeds_differ() {
        let waits = |mut b: Backoff| -> Vec<Duration> { (0..8).map(|_| b.full_jitter()).collect() };
        assert_eq!(
            waits(Backoff::with_seed(BASE, MAX, 42)),
            waits(Backoff::with_seed(BASE, MAX, 42))
        );
        assert_ne!(
            waits(Backoff::new(BASE, MAX)),
            waits(Backoff::new(BASE, MAX))
        );
    }
}
