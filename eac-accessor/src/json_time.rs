//! How times and durations are written in the JSON eac serves: Unix seconds and
//! milliseconds, as numbers.

use std::time::{Duration, SystemTime};

/// A time as seconds since the Unix epoch (fractional).
pub(crate) fn unix_seconds<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    s.serialize_f64(secs)
}

/// A duration in milliseconds (fractional).
pub(crate) fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}
