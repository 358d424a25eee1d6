//! What a gray release's record says, read from its JSON: which release is in flight,
//! whom it chose, when it wrote. Plain functions of the records, shared by the source
//! (which reads them to know what to serve) and the fleet's writers and views.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::canary::{Figures, RoleStats};

/// A release record's state while its canaries are judged.
pub(crate) const CANARY: &str = "canary";
/// A release record's state once promoted to every member.
pub(crate) const PROMOTED: &str = "promoted";
/// A release record's state once rolled back.
pub(crate) const ABORTED: &str = "aborted";

/// The release in flight (`state: canary`) among `releases`, if any: the oldest.
pub(crate) fn flying(releases: &BTreeMap<String, Value>) -> Option<(&str, &Value)> {
    releases
        .iter()
        .filter(|(_, r)| r["state"] == CANARY)
        .min_by_key(|(_, r)| r["revision"].as_i64().unwrap_or(0))
        .map(|(id, r)| (id.as_str(), r))
}

/// The release in flight that chose `member` as a canary, if any.
pub(crate) fn canary_of(releases: &BTreeMap<String, Value>, member: &str) -> Option<String> {
    let (id, record) = flying(releases)?;
    is_canary(record, member).then(|| id.to_owned())
}

/// Whether `record`'s release chose `member`.
pub(crate) fn is_canary(record: &Value, member: &str) -> bool {
    record["canaries"]
        .as_array()
        .is_some_and(|c| c.iter().any(|m| m == member))
}

/// When a release record's configuration was written: its decision's time once
/// decided (the promotion wrote the prefix then), else its start.
pub(crate) fn written_at(record: &Value) -> Option<f64> {
    record["decided_at"]
        .as_f64()
        .or_else(|| record["at"].as_f64())
}

/// The time `seconds` after the Unix epoch, as a record gives it; `None` for one no clock
/// holds (negative, not finite, or past the clock's range).
pub(crate) fn unix_time(seconds: f64) -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}

/// The most one member's record counts in one bucket, or as errors: far more than a
/// member serves in a release's window, and small enough that the sums over every
/// bucket of every member cannot overflow.
const MOST_COUNTED: u64 = u32::MAX as u64;

/// What the members' records say of `release`: the canaries' figures and the stable
/// members', each the sum of the members' counts.
pub(crate) fn figures(
    release: &str,
    record: &Value,
    members: &BTreeMap<String, Value>,
) -> (Figures, Figures) {
    let counts = |canary: bool| {
        let per_member: Vec<(Vec<(usize, u64)>, u64)> = members
            .iter()
            .filter(|(id, _)| is_canary(record, id) == canary)
            .filter_map(|(_, m)| {
                let r = &m["release"];
                (r["id"] == release).then(|| {
                    let buckets = r["buckets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|b| {
                            let count = b[1].as_u64()?.min(MOST_COUNTED);
                            Some((b[0].as_u64()? as usize, count))
                        })
                        .collect();
                    let errors = r["errors"].as_u64().unwrap_or(0).min(MOST_COUNTED);
                    (buckets, errors)
                })
            })
            .collect();
        RoleStats::from_counts(per_member.iter().map(|(b, e)| (b.as_slice(), *e))).figures()
    };
    (counts(true), counts(false))
}

/// What a member writes of a release in its record: its role and its counts since it
/// saw the release.
pub(crate) fn member_figures(release: &str, canary: bool, stats: &RoleStats) -> Value {
    let (buckets, errors) = stats.counts();
    let figures = stats.figures();
    json!({
        "id": release,
        "role": if canary { "canary" } else { "stable" },
        "requests": figures.requests,
        "errors": errors,
        "p99_ms": figures.p99.map(|d| d.as_secs_f64() * 1000.0),
        "buckets": buckets,
    })
}
