//! The fleet view: each member's state, computed the same way by every instance from
//! the members' records and the prefix's latest configuration revision — Istio's
//! `proxy-status` for eac.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

/// A member applied the latest revision.
pub(crate) const SYNCED: &str = "SYNCED";
/// A member rejected the latest revision (its NACK names it).
pub(crate) const NACKED: &str = "NACKED";
/// A member is behind the latest revision, for less than the stale window.
pub(crate) const SYNCING: &str = "SYNCING";
/// A member is behind the latest revision for longer than the stale window.
pub(crate) const STALE: &str = "STALE";

/// What the fleet looks like from here: `{"revision", "members": [{"id", "state",
/// "version", "hash", "applied_revision", "applied_at", "propagation", "nack"}],
/// "applied": {"count", "of", "slowest_seconds"}, "releases": [{"id", "revision", "at",
/// "sections", "by"}]}`.
///
/// `latest` is the prefix's latest configuration revision, seen at `latest_seen`; a
/// member behind it for `stale` or more is `STALE`. Members whose lease ran out have no
/// record, so they are not listed. `applied` counts the members that applied `latest`
/// and the slowest one's propagation; `releases` are the writers' records, newest first.
pub(crate) fn view(
    latest: i64,
    latest_seen: SystemTime,
    records: &BTreeMap<String, Value>,
    releases: &BTreeMap<String, Value>,
    stale: Duration,
    now: SystemTime,
) -> Value {
    let behind_for = now.duration_since(latest_seen).unwrap_or_default();
    let mut applied = 0;
    let mut slowest: Option<f64> = None;
    let members: Vec<Value> = records
        .iter()
        .map(|(id, record)| {
            let state = state(record, latest, behind_for, stale);
            if state == SYNCED {
                applied += 1;
                // The propagation of the revision applied, when it is the latest.
                if record["applied_revision"].as_i64() == Some(latest)
                    && let Some(took) = record["propagation"]["seconds"].as_f64()
                {
                    slowest = Some(slowest.map_or(took, |s| s.max(took)));
                }
            }
            json!({
                "id": id,
                "state": state,
                "version": record["version"],
                "hash": record["hash"],
                "applied_revision": record["applied_revision"],
                "applied_at": record["applied_at"],
                "propagation": record["propagation"],
                "nack": record["nack"],
                "labels": record["labels"],
                "release": record["release"],
            })
        })
        .collect();
    let mut releases: Vec<Value> = releases
        .iter()
        .map(|(id, r)| {
            // A gray release's selector, canaries, window, deadline and decision too.
            // and, for a gray release, what its judge sees: the canaries' and the stable
            // members' figures summed from their records.
            let mut release = r.clone();
            if let Some(map) = release.as_object_mut() {
                map.insert("id".into(), id.clone().into());
                if r["kind"] == "release" {
                    let (canary, stable) = super::records::figures(id, r, records);
                    map.insert(
                        "figures".into(),
                        json!({"canary": canary, "stable": stable}),
                    );
                }
            }
            release
        })
        .collect();
    releases.sort_by_key(|r| std::cmp::Reverse(r["revision"].as_i64().unwrap_or(0)));
    releases.truncate(SHOWN_RELEASES);
    json!({
        "revision": latest,
        "members": members,
        "applied": {"count": applied, "of": records.len(), "slowest_seconds": slowest},
        "releases": releases,
    })
}

/// The releases a view lists, newest first.
pub(crate) const SHOWN_RELEASES: usize = 10;

/// When `latest` appeared, as far as the records tell, for a reader that was not
/// watching (`live_server fleet`): the time its release record gives, else the first
/// ACK or NACK of it; `None` when nothing says.
pub(crate) fn first_seen(
    latest: i64,
    records: &BTreeMap<String, Value>,
    releases: &BTreeMap<String, Value>,
) -> Option<SystemTime> {
    let at = super::records::unix_time;
    if let Some(released) = releases
        .values()
        .find(|r| r["revision"].as_i64() == Some(latest))
        .and_then(super::records::written_at)
    {
        return at(released);
    }
    records
        .values()
        .filter_map(|r| {
            if r["applied_revision"].as_i64() >= Some(latest) {
                r["applied_at"].as_f64()
            } else if r["nack"]["revision"].as_i64() >= Some(latest) {
                r["nack"]["at"].as_f64()
            } else {
                None
            }
        })
        .filter_map(at)
        .min()
}

/// One member's state: `NACKED` wins over being behind.
fn state(record: &Value, latest: i64, behind_for: Duration, stale: Duration) -> &'static str {
    let nacked = record["nack"]["revision"].as_i64();
    let applied = record["applied_revision"].as_i64();
    if nacked.is_some_and(|n| n >= latest) {
        NACKED
    } else if applied.is_some_and(|a| a >= latest) {
        SYNCED
    } else if behind_for < stale {
        SYNCING
    } else {
        STALE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(applied: Option<i64>, nack: Option<i64>) -> Value {
        json!({
            "version": 3,
            "hash": "abc",
            "applied_revision": applied,
            "applied_at": 1.5,
            "nack": nack.map(|revision| json!({"revision": revision, "errors": []})),
        })
    }

    #[test]
    fn each_member_s_state_follows_from_its_record_and_the_latest_revision() {
        let stale = Duration::from_secs(5);
        let seen = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let records = BTreeMap::from([
            ("a".to_owned(), record(Some(10), None)),
            ("b".to_owned(), record(Some(9), Some(10))),
            ("c".to_owned(), record(Some(9), None)),
            ("d".to_owned(), record(None, None)),
            // A NACK of an older revision, then the latest applied: synced.
            ("e".to_owned(), record(Some(10), Some(8))),
        ]);
        let states = |now| {
            let view = view(10, seen, &records, &BTreeMap::new(), stale, now);
            assert_eq!(view["revision"], 10);
            view["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap().to_owned(),
                        m["state"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let soon = seen + Duration::from_secs(1);
        let later = seen + Duration::from_secs(6);
        let pairs = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            states(soon),
            pairs(&[
                ("a", SYNCED),
                ("b", NACKED),
                ("c", SYNCING),
                ("d", SYNCING),
                ("e", SYNCED)
            ])
        );
        assert_eq!(
            states(later),
            pairs(&[
                ("a", SYNCED),
                ("b", NACKED),
                ("c", STALE),
                ("d", STALE),
                ("e", SYNCED)
            ])
        );
    }

    /// The fleet view of a prefix holding `records` (key under the prefix, value), read
    /// from a real etcd the way `live_server fleet` reads it.
    async fn fleet_view_of(records: &[(&str, String)]) -> Result<Value, crate::error::Error> {
        let (_server, _client, etcd) = super::super::etcd_holding("/eac/view/", records).await;
        etcd.fleet_view().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_record_with_a_time_past_what_a_clock_holds_is_read_without_a_panic() {
        let view = fleet_view_of(&[
            ("greeting", r#"{"message": "hi"}"#.to_owned()),
            (
                ".instances/a",
                r#"{"applied_revision": 1000, "applied_at": 1e19}"#.to_owned(),
            ),
            (
                ".instances/b",
                r#"{"nack": {"revision": 1000, "at": 1.8e19}}"#.to_owned(),
            ),
        ])
        .await
        .unwrap();
        let states: Vec<&str> = view["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, [SYNCED, NACKED]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_record_with_counts_that_overflow_their_sum_is_read_without_a_panic() {
        let max = u64::MAX;
        let view = fleet_view_of(&[
            ("greeting", r#"{"message": "hi"}"#.to_owned()),
            (
                ".releases/r1",
                r#"{"kind": "release", "state": "canary", "canaries": ["a"]}"#.to_owned(),
            ),
            (
                ".instances/a",
                format!(
                    r#"{{"release": {{"id": "r1", "errors": {max},
                        "buckets": [[0, {max}], [1, {max}], [{max}, {max}]]}}}}"#
                ),
            ),
            (
                ".instances/b",
                format!(r#"{{"release": {{"id": "r1", "buckets": [[0, {max}], [0, {max}]]}}}}"#),
            ),
        ])
        .await
        .unwrap();
        let figures = &view["releases"][0]["figures"];
        let canary = figures["canary"]["requests"].as_u64().unwrap();
        let stable = figures["stable"]["requests"].as_u64().unwrap();
        assert!(canary > u64::from(u32::MAX), "{figures}");
        assert!(stable > u64::from(u32::MAX), "{figures}");
        assert!(
            figures["canary"]["errors"].as_u64().unwrap() <= canary,
            "{figures}"
        );
    }
}
