//! The judge: one rule for an in-process canary and a fleet's gray release alike. It
//! compares what the canary's requests met with what the stable version's met over the
//! same window, and says whether the canary hurts.

use std::fmt;
use std::time::Duration;

/// The judge's four thresholds, named alike in both scopes (`EAC_CANARY_MIN_REQUESTS`,
/// `EAC_CANARY_MAX_ERROR_RATIO`, `EAC_CANARY_MAX_ERROR_RATIO_VS_STABLE`,
/// `EAC_CANARY_MAX_LATENCY_RATIO` in process; `--min-requests` and the same names as
/// flags for a fleet's release).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Thresholds {
    /// Fewer canary requests than this: no verdict either way (200 in process, 100 for
    /// a fleet).
    pub min_requests: u64,
    /// The canary's share of 5xx answers above this is a breach (default 0.01).
    pub max_error_ratio: f64,
    /// The canary's share of 5xx answers above this multiple of the stable version's is
    /// a breach (default 2.0).
    pub max_error_ratio_vs_stable: f64,
    /// The canary's p99 latency above this multiple of the stable version's is a breach
    /// (default 1.5), when it is also [`latency_floor`](Thresholds::latency_floor) above
    /// it: a fast service's jitter is not a breach.
    pub max_latency_ratio: f64,
    /// How far above the stable p99 a canary's p99 must be to count (50 ms).
    #[serde(serialize_with = "crate::json_time::millis")]
    pub latency_floor: Duration,
}

impl Thresholds {
    /// The defaults for a canary inside one process (200 requests at least).
    pub const IN_PROCESS: Thresholds = Thresholds {
        min_requests: 200,
        max_error_ratio: 0.01,
        max_error_ratio_vs_stable: 2.0,
        max_latency_ratio: 1.5,
        latency_floor: Duration::from_millis(50),
    };

    /// The defaults for a fleet's gray release (100 canary requests at least).
    pub const FLEET: Thresholds = Thresholds {
        min_requests: 100,
        ..Thresholds::IN_PROCESS
    };
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::IN_PROCESS
    }
}

/// What one role's requests met during a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Figures {
    /// Requests answered.
    pub requests: u64,
    /// Of those, answered with a 5xx status.
    pub errors: u64,
    /// The 99th percentile of their latency, when there were any.
    #[serde(serialize_with = "p99_millis")]
    pub p99: Option<Duration>,
}

fn p99_millis<S: serde::Serializer>(p99: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match p99 {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

impl Figures {
    /// Figures from counts.
    pub fn new(requests: u64, errors: u64, p99: Option<Duration>) -> Figures {
        Figures {
            requests,
            errors,
            p99,
        }
    }

    /// The share of requests answered with a 5xx (0 with no request).
    pub fn error_ratio(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// The judge's answer for a canary at one moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Fewer canary requests than the minimum: nothing can be said yet.
    TooFew,
    /// Enough requests and no threshold crossed.
    Healthy,
    /// A threshold crossed: the canary hurts, and why.
    Breach(Breach),
}

/// Why a canary hurts, with the figures: "canary: 5xx 11.8% vs 0.2% on 1,204 requests".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach(String);

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Judges `canary` against `stable` over the same window.
///
/// With at least `min_requests` canary requests, a breach is any of:
/// - the canary's 5xx ratio above `max_error_ratio`;
/// - the canary's 5xx ratio above `max_error_ratio_vs_stable` times the stable one's,
///   counting the stable version as having had one error when it had none (so that one
///   error of the canary against none is not infinitely worse, while a few are);
/// - the canary's p99 above `max_latency_ratio` times the stable one's and at least
///   `latency_floor` above it.
///
/// ```
/// use std::time::Duration;
/// use eac_accessor::canary::{judge, Figures, Thresholds, Verdict};
///
/// let ms = |n| Some(Duration::from_millis(n));
/// let stable = Figures::new(20_000, 40, ms(30));
/// let hurting = Figures::new(1_204, 142, ms(31));
/// let Verdict::Breach(why) = judge(&stable, &hurting, &Thresholds::IN_PROCESS) else { panic!() };
/// assert_eq!(why.to_string(), "canary: 5xx 11.8% vs 0.2% on 1,204 requests");
/// assert_eq!(judge(&stable, &Figures::new(1_204, 2, ms(32)), &Thresholds::IN_PROCESS), Verdict::Healthy);
/// assert_eq!(judge(&stable, &Figures::new(10, 9, ms(32)), &Thresholds::IN_PROCESS), Verdict::TooFew);
/// ```
pub fn judge(stable: &Figures, canary: &Figures, t: &Thresholds) -> Verdict {
    if canary.requests < t.min_requests {
        return Verdict::TooFew;
    }
    let ratio = canary.error_ratio();
    let stable_ratio = stable.error_ratio();
    // None from the stable side: as if it had one, so one canary error is not a breach
    // by itself, but a few against a clean stable are.
    let stable_floor = if stable.errors == 0 {
        1.0 / stable.requests.max(1) as f64
    } else {
        stable_ratio
    };
    let errors = || {
        format!(
            "canary: 5xx {} vs {} on {} requests",
            percent(ratio),
            percent(stable_ratio),
            thousands(canary.requests)
        )
    };
    if ratio > t.max_error_ratio
        || (canary.errors > 0 && ratio > t.max_error_ratio_vs_stable * stable_floor)
    {
        return Verdict::Breach(Breach(errors()));
    }
    if let (Some(c), Some(s)) = (canary.p99, stable.p99)
        && c.as_secs_f64() > t.max_latency_ratio * s.as_secs_f64()
        && c.saturating_sub(s) >= t.latency_floor
    {
        return Verdict::Breach(Breach(format!(
            "canary: p99 {} vs {} on {} requests",
            millis(c),
            millis(s),
            thousands(canary.requests)
        )));
    }
    Verdict::Healthy
}

/// The figures of a canary that passed its window, as its promotion says them:
/// "5xx 0.1% vs 0.2%, p99 4 ms vs 3 ms on 1,204 canary requests".
pub(crate) fn compared(stable: &Figures, canary: &Figures) -> String {
    let p99 = |f: &Figures| f.p99.map_or_else(|| "-".to_owned(), millis);
    format!(
        "5xx {} vs {}, p99 {} vs {} on {} canary requests",
        percent(canary.error_ratio()),
        percent(stable.error_ratio()),
        p99(canary),
        p99(stable),
        thousands(canary.requests)
    )
}

fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// `1204` → `1,204`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds::IN_PROCESS;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn too_few_canary_requests_give_no_verdict_whatever_they_met() {
        let stable = Figures::new(10_000, 0, ms(10));
        assert_eq!(
            judge(&stable, &Figures::new(199, 199, ms(900)), &T),
            Verdict::TooFew
        );
        assert!(matches!(
            judge(&stable, &Figures::new(200, 199, ms(900)), &T),
            Verdict::Breach(_)
        ));
    }

    #[test]
    fn an_error_ratio_over_the_maximum_is_a_breach() {
        let stable = Figures::new(10_000, 500, ms(10)); // 5% on the stable side too
        // 6% is not twice 5%, but it is over the 1% maximum.
        let Verdict::Breach(why) = judge(&stable, &Figures::new(1_000, 60, ms(10)), &T) else {
            panic!("6% of 5xx is over the maximum")
        };
        assert_eq!(
            why.to_string(),
            "canary: 5xx 6.0% vs 5.0% on 1,000 requests"
        );
    }

    #[test]
    fn a_ratio_under_the_maximum_but_over_twice_the_stable_one_is_a_breach() {
        let stable = Figures::new(10_000, 20, ms(10)); // 0.2%
        assert!(matches!(
            judge(&stable, &Figures::new(1_000, 5, ms(10)), &T),
            Verdict::Breach(_)
        )); // 0.5%
        assert_eq!(
            judge(&stable, &Figures::new(1_000, 3, ms(10)), &T),
            Verdict::Healthy
        ); // 0.3%
    }

    #[test]
    fn against_a_clean_stable_one_canary_error_is_not_a_breach_but_a_few_are() {
        let stable = Figures::new(2_000, 0, ms(10));
        assert_eq!(
            judge(&stable, &Figures::new(1_000, 1, ms(10)), &T),
            Verdict::Healthy
        );
        assert!(matches!(
            judge(&stable, &Figures::new(1_000, 3, ms(10)), &T),
            Verdict::Breach(_)
        ));
        assert_eq!(
            judge(&stable, &Figures::new(1_000, 0, ms(10)), &T),
            Verdict::Healthy
        );
    }

    #[test]
    fn latency_is_a_breach_only_past_the_ratio_and_the_floor_both() {
        let stable = Figures::new(10_000, 0, ms(20));
        // 3× but only 40 ms above: jitter of a fast service.
        assert_eq!(
            judge(&stable, &Figures::new(500, 0, ms(60)), &T),
            Verdict::Healthy
        );
        // 1.4× and 80 ms above: under the ratio.
        let slow_stable = Figures::new(10_000, 0, ms(200));
        assert_eq!(
            judge(&slow_stable, &Figures::new(500, 0, ms(280)), &T),
            Verdict::Healthy
        );
        // 4× and 60 ms above: a breach.
        let Verdict::Breach(why) = judge(&stable, &Figures::new(500, 0, ms(80)), &T) else {
            panic!("4x and 60 ms above is a breach")
        };
        assert_eq!(
            why.to_string(),
            "canary: p99 80 ms vs 20 ms on 500 requests"
        );
        // No stable requests: nothing to compare the latency with.
        assert_eq!(
            judge(&Figures::default(), &Figures::new(500, 0, ms(900)), &T),
            Verdict::Healthy
        );
    }

    #[test]
    fn the_fleet_needs_fewer_requests_and_shares_the_rest() {
        assert_eq!(Thresholds::FLEET.min_requests, 100);
        assert_eq!(Thresholds::FLEET.max_error_ratio, T.max_error_ratio);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
