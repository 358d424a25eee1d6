//! Settings of the process — timings, limits, modes — read from environment variables,
//! every bad variable reported at once.
//!
//! These are the toggles a service reads once at start (`EAC_REFRESH_COOLDOWN_MS`,
//! `EAC_RELOAD_MODE`, …), not its configuration (that is [`source::Env`](crate::source::Env)'s
//! overlay). [`ReloadConfig::from_env`](crate::reload::ReloadConfig::from_env) reads
//! through an [`EnvSettings`], and so can a service for its own:
//!
//! ```
//! use std::time::Duration;
//! use eac_accessor::settings::EnvSettings;
//!
//! let vars = |name: &str| match name {
//!     "APP_GRACE_MS" => Some("soon".to_owned()),
//!     "APP_WORKERS" => Some("many".to_owned()),
//!     "APP_TIMEOUT_MS" => Some("1500".to_owned()),
//!     _ => None,
//! };
//! let mut env = EnvSettings::from_vars(vars);
//! let grace = env.millis("APP_GRACE_MS").unwrap_or(Duration::from_secs(10));
//! let workers = env
//!     .parse("APP_WORKERS", |v| v.parse::<u16>().map_err(|_| "a whole number of workers"))
//!     .unwrap_or(4);
//! let timeout = env.millis("APP_TIMEOUT_MS");
//! assert_eq!(timeout, Some(Duration::from_millis(1500)));
//!
//! // Both bad variables, each with its value and what was expected:
//! let errors = env.finish((grace, workers)).unwrap_err();
//! assert_eq!(errors.len(), 2);
//! assert_eq!(
//!     errors.as_slice()[1].to_string(),
//!     "env var `APP_WORKERS`: got `many`, expected a whole number of workers"
//! );
//! ```

use std::fmt;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Errors, SourceName};

/// The longest time a setting may hold: a day, in milliseconds.
pub const MAX_MILLIS: u64 = 86_400_000;

/// The most characters of a bad value an error repeats: enough to recognise a typo,
/// too few to leak much of a token set in the wrong variable.
const SHOWN_CHARS: usize = 24;

/// Parses a whole number of milliseconds, at most [`MAX_MILLIS`] (a day): what every
/// `*_MS` setting holds. Surrounding spaces are ignored.
///
/// Its error says what was expected, so it also serves as a `clap` value parser:
///
/// ```
/// use std::time::Duration;
/// use eac_accessor::settings::millis;
///
/// assert_eq!(millis(" 250 ")?, Duration::from_millis(250));
/// assert!(millis("2s").is_err());
/// assert!(millis("86400001").is_err());
/// # Ok::<(), eac_accessor::Error>(())
/// ```
pub fn millis(value: &str) -> Result<Duration, Error> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms <= MAX_MILLIS => Ok(Duration::from_millis(ms)),
        _ => Err(Error::new(
            ErrorKind::Parse,
            format!("expected a whole number of milliseconds, at most {MAX_MILLIS} (a day)"),
        )),
    }
}

/// Parses a duration written with its unit: `250ms`, `10s`, `2m` (whole numbers; at
/// most a day), as flags such as `live_server put --wait=10s` take it.
///
/// ```
/// use std::time::Duration;
/// use eac_accessor::settings::duration;
///
/// assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
/// assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
/// assert!(duration("10").unwrap_err().to_string().contains("expected a whole number with a unit"));
/// ```
pub fn duration(value: &str) -> Result<Duration, Error> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let unit_ms = match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        _ => None,
    };
    let ms = unit_ms.and_then(|unit| number.parse::<u64>().ok()?.checked_mul(unit));
    match ms {
        Some(ms) if ms <= MAX_MILLIS => Ok(Duration::from_millis(ms)),
        _ => Err(Error::new(
            ErrorKind::Parse,
            "expected a whole number with a unit, `ms`, `s` or `m` (`250ms`, `10s`, `2m`), \
             at most a day",
        )),
    }
}

/// Reads settings from environment variables (or any lookup), keeping an error for
/// each variable that is set but bad; [`finish`](EnvSettings::finish) reports them all.
///
/// A variable that is unset, or set to nothing but spaces, is not set: its default
/// stays. An error names the variable, repeats its value (shortened; read no secret
/// through this) and says what was expected. See the [module docs](self).
pub struct EnvSettings<V> {
    var: V,
    errors: Vec<Error>,
}

impl EnvSettings<fn(&str) -> Option<String>> {
    /// Reads the process's environment; a variable that is not UTF-8 counts as unset.
    pub fn from_env() -> Self {
        EnvSettings::from_vars(|name| std::env::var(name).ok())
    }
}

impl<V: Fn(&str) -> Option<String>> EnvSettings<V> {
    /// Reads variables through `var` (a name to its value, `None` when unset).
    pub fn from_vars(var: V) -> Self {
        EnvSettings {
            var,
            errors: Vec::new(),
        }
    }

    /// The value of `name`, trimmed; `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.var)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` as `parse` reads it; `None` when unset, or when `parse`
    /// fails (whose error says what was expected: "a whole number of workers"), which
    /// is kept for [`finish`](EnvSettings::finish).
    pub fn parse<T, E: fmt::Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let value = self.get(name)?;
        match parse(&value) {
            Ok(parsed) => Some(parsed),
            Err(expected) => {
                let expected = expected.to_string();
                let expected = expected.strip_prefix("expected ").unwrap_or(&expected);
                let message = format!("got `{}`, expected {expected}", shown(&value));
                self.reject(name, message);
                None
            }
        }
    }

    /// The value of `name` as whole milliseconds (see [`millis`]); `None` when unset
    /// or bad (kept for [`finish`](EnvSettings::finish)).
    pub fn millis(&mut self, name: &str) -> Option<Duration> {
        self.parse(name, millis)
    }

    /// Keeps an error for `name` whose value reads well but cannot be used, in words
    /// that say why and what to give instead.
    pub fn reject(&mut self, name: &str, message: impl Into<String>) {
        self.errors.push(
            Error::new(ErrorKind::Parse, message).with_source(SourceName::EnvVar(name.to_owned())),
        );
    }

    /// `value`, or every error kept, in the order the variables were read.
    pub fn finish<T>(self, value: T) -> Result<T, Errors> {
        match Errors::from_vec(self.errors) {
            None => Ok(value),
            Some(errors) => Err(errors),
        }
    }
}

impl<V> fmt::Debug for EnvSettings<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSettings")
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

/// The first [`SHOWN_CHARS`] characters of `value`, with `…` when there were more.
fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let head = head.escape_debug().to_string();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(set: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn every_bad_variable_is_reported_with_its_value_and_what_was_expected() {
        let mut env = EnvSettings::from_vars(vars(&[
            ("A_MS", "soon"),
            ("B_MS", " 20 "),
            ("C_MS", "86400001"),
            ("N", "-3"),
        ]));
        assert_eq!(env.millis("A_MS"), None);
        assert_eq!(env.millis("B_MS"), Some(Duration::from_millis(20)));
        assert_eq!(env.millis("C_MS"), None);
        assert_eq!(
            env.parse("N", |v| v
                .parse::<u8>()
                .map_err(|_| "a count from 0 to 255")),
            None
        );
        env.reject("D", "D=0 would stop everything: give at least 1");
        let errors = env.finish(()).unwrap_err();
        let shown: Vec<String> = errors.iter().map(Error::to_string).collect();
        assert_eq!(
            shown,
            [
                "env var `A_MS`: got `soon`, expected a whole number of milliseconds, at most 86400000 (a day)",
                "env var `C_MS`: got `86400001`, expected a whole number of milliseconds, at most 86400000 (a day)",
                "env var `N`: got `-3`, expected a count from 0 to 255",
                "env var `D`: D=0 would stop everything: give at least 1",
            ]
        );
        assert!(errors.iter().all(|e| e.kind() == ErrorKind::Parse));
        assert_eq!(
            errors.as_slice()[0].source(),
            Some(&SourceName::EnvVar("A_MS".into()))
        );
    }

    #[test]
    fn unset_and_blank_variables_keep_their_defaults() {
        let mut env = EnvSettings::from_vars(vars(&[("BLANK_MS", "  ")]));
        assert_eq!(env.millis("BLANK_MS"), None);
        assert_eq!(env.millis("UNSET_MS"), None);
        assert_eq!(env.finish(7).unwrap(), 7);
    }

    #[test]
    fn a_long_value_is_shortened_and_escaped() {
        let mut env = EnvSettings::from_vars(vars(&[(
            "T_MS",
            "sk_live_0123456789abcdefghijklmnopqrstuvwxyz",
        )]));
        env.millis("T_MS");
        let message = env.finish(()).unwrap_err().to_string();
        assert!(
            message.contains("got `sk_live_0123456789abcdef…`"),
            "{message}"
        );
        assert!(!message.contains("xyz"), "{message}");

        let mut env = EnvSettings::from_vars(vars(&[("Q_MS", "1\"\n2")]));
        env.millis("Q_MS");
        let message = env.finish(()).unwrap_err().to_string();
        assert!(message.contains(r#"got `1\"\n2`"#), "{message}");
    }

    #[test]
    fn millis_reads_whole_milliseconds_up_to_a_day() {
        assert_eq!(millis("0").unwrap(), Duration::ZERO);
        assert_eq!(millis("86400000").unwrap(), Duration::from_secs(86_400));
        for bad in ["", "1.5", "-1", "2s", "86400001", "18446744073709551616"] {
            let error = millis(bad).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Parse, "{bad}");
            assert!(
                error.to_string().starts_with("expected a whole number"),
                "{bad}"
            );
        }
    }
}
