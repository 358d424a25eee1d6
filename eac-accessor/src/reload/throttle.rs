//! When a run that is not forced may start: the cooldown after a publish, and the
//! backoff after failed runs.

use std::time::Duration;

use tokio::time::Instant;

use super::config::ReloadConfig;
use crate::backoff::Backoff;
use crate::error::{ErrorKind, Errors};
use crate::publish::Outcome;

/// `now + d`, or far in the future when that does not fit an `Instant`.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// The last publish, and the backoff after failed runs.
#[derive(Debug)]
pub(super) struct Throttle {
    pub(super) last_publish: Option<Instant>,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

/// Why a run that is not forced must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// Failed runs: an exponential backoff.
    Backoff,
    /// A publish: the cooldown after it.
    Cooldown,
}

impl Hold {
    pub(super) fn why(self) -> &'static str {
        match self {
            Hold::Backoff => "backing off after failed reloads",
            Hold::Cooldown => "cooling down after the last publish",
        }
    }
}

impl Throttle {
    /// No publish yet, no failure: nothing to wait for.
    pub(super) fn new(config: &ReloadConfig) -> Throttle {
        Throttle {
            last_publish: None,
            backoff: Backoff::new(config.backoff, config.backoff_max),
            retry_at: None,
        }
    }

    /// How long a run that is not forced must still wait, and why.
    pub(super) fn wait(&self, config: &ReloadConfig, now: Instant) -> Option<(Duration, Hold)> {
        if let Some(at) = self.retry_at.filter(|at| *at > now) {
            return Some((at - now, Hold::Backoff));
        }
        let until = later(self.last_publish?, config.cooldown);
        (until > now).then(|| (until - now, Hold::Cooldown))
    }

    /// Records a run's result: a publish starts the cooldown, a failure the next
    /// backoff (base, doubled per failure up to the ceiling, full jitter).
    pub(super) fn record(&mut self, result: &Result<Outcome, Errors>, now: Instant) {
        match result {
            Ok(outcome) => {
                if outcome.is_published() {
                    self.last_publish = Some(now);
                }
                self.backoff.reset();
                self.retry_at = None;
            }
            Err(errors) if errors.has(ErrorKind::Throttled) => {}
            Err(_) => self.retry_at = Some(later(now, self.backoff.full_jitter())),
        }
    }
}
