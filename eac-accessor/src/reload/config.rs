//! The timings and mode of a [`ReloadCoordinator`](super::ReloadCoordinator), and
//! reading them from the environment.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Errors};
use crate::settings::EnvSettings;

/// Timings of a [`ReloadCoordinator`](super::ReloadCoordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadConfig {
    /// The least time between two publishes unless forced (default 250 ms).
    pub cooldown: Duration,
    /// The first backoff after a rejected run, doubled per further failure (default 100 ms).
    pub backoff: Duration,
    /// The longest backoff (default 5 s).
    pub backoff_max: Duration,
    /// How long a run may take before it is abandoned (default 10 s).
    pub build_timeout: Duration,
    /// How long file events must be quiet before a reload (default 100 ms).
    pub debounce: Duration,
    /// The longest a change waits for the events to go quiet (default 1 s): a file
    /// rewritten without pause is still reloaded this long after the first event, and
    /// the debounce starts again.
    pub max_wait: Duration,
    /// Whether a detected change is published at once or waits for an operator
    /// (default [`ReloadMode::Auto`]).
    pub mode: ReloadMode,
    /// How long health checks may take after a publish (default 5 s).
    pub health_window: Duration,
    /// How a canary runs in [`ReloadMode::Canary`] (and for `POST canary`).
    pub canary: crate::canary::CanaryConfig,
    /// Poll watched folders at this interval instead of asking the OS for events
    /// (default: events; for network file systems where events do not arrive). Watching
    /// falls back to polling on its own when events cannot be had.
    pub poll_interval: Option<Duration>,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            cooldown: Duration::from_millis(250),
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            build_timeout: Duration::from_secs(10),
            debounce: Duration::from_millis(100),
            max_wait: Duration::from_secs(1),
            mode: ReloadMode::Auto,
            health_window: Duration::from_secs(5),
            canary: crate::canary::CanaryConfig::default(),
            poll_interval: None,
        }
    }
}

/// The variable that sets the [`ReloadMode`].
const MODE_ENV: &str = "EAC_RELOAD_MODE";

/// Whether a detected change (a file event, a poll, a signal) is published at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadMode {
    /// A change is validated and published at once (the default).
    #[default]
    Auto,
    /// A change is validated and shown as pending (in the status, with its diff, and as
    /// an [`Event::Pending`](crate::Event::Pending)), and published only by an explicit
    /// [`ReloadCoordinator::refresh`](super::ReloadCoordinator::refresh) (the admin's `POST refresh`).
    Manual,
    /// A valid change (and a refresh) becomes the [canary](crate::canary): it serves
    /// [`CanaryConfig::share`](crate::canary::CanaryConfig::share) of the requests while
    /// the current version serves the rest, and the judge promotes it after the window
    /// or aborts it on a breach.
    Canary,
}

impl std::str::FromStr for ReloadMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<ReloadMode, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(ReloadMode::Auto),
            "manual" => Ok(ReloadMode::Manual),
            "canary" => Ok(ReloadMode::Canary),
            _ => Err(Error::new(
                ErrorKind::Parse,
                "expected a reload mode: `auto`, `manual` or `canary`",
            )),
        }
    }
}

impl std::fmt::Display for ReloadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReloadMode::Auto => "auto",
            ReloadMode::Manual => "manual",
            ReloadMode::Canary => "canary",
        })
    }
}

impl ReloadConfig {
    /// The defaults, overridden by `EAC_REFRESH_COOLDOWN_MS`, `EAC_REFRESH_BACKOFF_MS`,
    /// `EAC_REFRESH_BUILD_TIMEOUT_MS`, `EAC_WATCH_DEBOUNCE_MS`, `EAC_WATCH_MAX_WAIT_MS`
    /// (whole milliseconds, at most a day), `EAC_RELOAD_MODE` (`auto`, `manual` or
    /// `canary`) and the canary's `EAC_CANARY_*` (see [`CanaryConfig`](crate::canary::CanaryConfig)).
    ///
    /// A variable that is set but not a whole number (or not a mode) is an error naming
    /// it, its value and what was expected; every such variable is reported. A blank
    /// variable counts as unset. Read through [`EnvSettings`].
    pub fn from_env() -> Result<ReloadConfig, Errors> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](ReloadConfig::from_env), reading variables through `var`.
    ///
    /// ```
    /// use eac_accessor::reload::ReloadConfig;
    ///
    /// let errors = ReloadConfig::from_vars(|name| match name {
    ///     "EAC_REFRESH_COOLDOWN_MS" => Some("1s".into()),
    ///     "EAC_RELOAD_MODE" => Some("sometimes".into()),
    ///     _ => None,
    /// })
    /// .unwrap_err();
    /// assert_eq!(errors.len(), 2);
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<ReloadConfig, Errors> {
        let mut env = EnvSettings::from_vars(var);
        let mut config = ReloadConfig::default();
        for (name, slot) in [
            ("EAC_REFRESH_COOLDOWN_MS", &mut config.cooldown),
            ("EAC_REFRESH_BACKOFF_MS", &mut config.backoff),
            ("EAC_REFRESH_BUILD_TIMEOUT_MS", &mut config.build_timeout),
            ("EAC_WATCH_DEBOUNCE_MS", &mut config.debounce),
            ("EAC_WATCH_MAX_WAIT_MS", &mut config.max_wait),
        ] {
            if let Some(ms) = env.millis(name) {
                *slot = ms;
            }
        }
        if let Some(mode) = env.parse(MODE_ENV, str::parse::<ReloadMode>) {
            config.mode = mode;
        }
        config.canary = crate::canary::CanaryConfig::read(&mut env);
        env.finish(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceName;

    #[test]
    fn every_bad_variable_is_reported_at_once() {
        let errors = ReloadConfig::from_vars(|name| match name {
            "EAC_REFRESH_COOLDOWN_MS" => Some("1s".into()),
            "EAC_REFRESH_BACKOFF_MS" => Some("250".into()),
            "EAC_WATCH_MAX_WAIT_MS" => Some("-5".into()),
            "EAC_RELOAD_MODE" => Some("sometimes".into()),
            _ => None,
        })
        .unwrap_err();
        let named: Vec<_> = errors.iter().map(Error::source).collect();
        assert_eq!(
            named,
            [
                Some(&SourceName::EnvVar("EAC_REFRESH_COOLDOWN_MS".into())),
                Some(&SourceName::EnvVar("EAC_WATCH_MAX_WAIT_MS".into())),
                Some(&SourceName::EnvVar("EAC_RELOAD_MODE".into())),
            ]
        );
        insta::assert_snapshot!(errors, @r"
        configuration rejected, 3 errors:
          - env var `EAC_REFRESH_COOLDOWN_MS`: got `1s`, expected a whole number of milliseconds, at most 86400000 (a day)
          - env var `EAC_WATCH_MAX_WAIT_MS`: got `-5`, expected a whole number of milliseconds, at most 86400000 (a day)
          - env var `EAC_RELOAD_MODE`: got `sometimes`, expected a reload mode: `auto`, `manual` or `canary`
        ");
    }

    #[test]
    fn a_blank_variable_keeps_the_default() {
        let config =
            ReloadConfig::from_vars(|name| (name == "EAC_REFRESH_COOLDOWN_MS").then(|| " ".into()))
                .unwrap();
        assert_eq!(config, ReloadConfig::default());
    }
}
