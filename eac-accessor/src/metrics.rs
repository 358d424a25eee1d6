//! The metrics eac records through the [`metrics`](https://docs.rs/metrics) facade, and
//! their descriptions; the table is in [`crate::docs::metrics`].
//!
//! A description reaches only the recorder installed when it is given, so
//! [`Builder::build`](crate::Builder::build) gives them every time it runs: install your
//! recorder before building the accessor and each metric eac records has its help text
//! and unit (`# HELP` lines in Prometheus' text format, which `promtool check metrics`
//! requires). A recorder installed later can call [`describe`] itself:
//!
//! ```
//! // After installing a recorder (`PrometheusBuilder::install_recorder`, …):
//! eac_accessor::metrics::describe();
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::Unit;

/// What a metric is, for the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricKind {
    /// Only goes up (its name ends in `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

/// One metric eac records: its name, kind, unit (a revision or a 0/1 flag has none)
/// and help text.
#[derive(Debug, Clone, Copy)]
struct Described {
    name: &'static str,
    kind: MetricKind,
    unit: Option<Unit>,
    help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: MetricKind,
    unit: Option<Unit>,
    help: &'static str,
) -> Described {
    Described {
        name,
        kind,
        unit,
        help,
    }
}

use MetricKind::{Counter, Gauge, Histogram};

/// Every metric eac records (some only with a feature: `http`'s remote source, `etcd`'s
/// prefix and fleet), as [`describe`] describes them.
const DESCRIBED: &[Described] = &[
    metric(
        "eac_reload_total",
        Counter,
        Some(Unit::Count),
        "Reloads by outcome: published, unchanged or rejected (a failed health check and an invalid pending change count as rejected).",
    ),
    metric(
        "eac_publish_duration_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time from reading the sources to the store or the rejection, for reloads that ran the pipeline.",
    ),
    metric(
        "eac_config_last_reload_successful",
        Gauge,
        None,
        "1 when the last reload published or found nothing new, 0 when it was rejected.",
    ),
    metric(
        "eac_config_last_reload_success_timestamp_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Unix time of the last successful reload.",
    ),
    metric(
        "eac_snapshot_version",
        Gauge,
        None,
        "The configuration version readers see.",
    ),
    metric(
        "eac_inputs_held_back",
        Gauge,
        Some(Unit::Count),
        "Inputs held back now: rejected while the rest of a change was published.",
    ),
    metric(
        "eac_history_write_failures_total",
        Counter,
        Some(Unit::Count),
        "Failed writes of the durable history store; it catches up at the next write that succeeds.",
    ),
    metric(
        "eac_source_up",
        Gauge,
        None,
        "1 when the source's last fetch succeeded, 0 when it failed.",
    ),
    metric(
        "eac_source_serving_cache",
        Gauge,
        None,
        "1 while what the source serves came from its last-known-good cache.",
    ),
    metric(
        "eac_source_last_success_timestamp_seconds",
        Gauge,
        Some(Unit::Seconds),
        "Unix time of the source's last successful fetch.",
    ),
    metric(
        "eac_source_requests_total",
        Counter,
        Some(Unit::Count),
        "The source's fetches by result: modified, not_modified or error.",
    ),
    metric(
        "eac_source_rejected_total",
        Counter,
        Some(Unit::Count),
        "Documents the source fetched that were rejected.",
    ),
    metric(
        "eac_applied_revision",
        Gauge,
        None,
        "The etcd revision of the prefix this instance serves.",
    ),
    metric(
        "eac_rejected_revision",
        Gauge,
        None,
        "The last etcd revision of the prefix this instance rejected.",
    ),
    metric(
        "eac_nacks_total",
        Counter,
        Some(Unit::Count),
        "etcd revisions of the prefix this instance rejected (NACKed).",
    ),
    metric(
        "eac_fleet_propagation_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Time from a write to the prefix (the writer's record, or this instance's receipt of it) to this instance serving it.",
    ),
    metric(
        "eac_canary_requests_total",
        Counter,
        Some(Unit::Count),
        "Requests answered while a canary ran (in process) or a gray release (in the fleet), by role: stable or canary.",
    ),
    metric(
        "eac_release_state",
        Gauge,
        None,
        "Each gray release of the fleet as this member saw it: 0 in flight, 1 promoted, -1 aborted.",
    ),
    metric(
        "eac_canary_errors_total",
        Counter,
        Some(Unit::Count),
        "Requests answered with a 5xx (or an error) while a canary ran, by role.",
    ),
    metric(
        "eac_canary_latency_seconds",
        Histogram,
        Some(Unit::Seconds),
        "Latency of the requests answered while a canary ran, by role (each at its bucket's upper bound).",
    ),
    metric(
        "eac_canary_decisions_total",
        Counter,
        Some(Unit::Count),
        "How canaries ended: promoted, aborted or superseded.",
    ),
];

/// Describes every metric eac records (help text and unit) to the recorder installed
/// now; [`Builder::build`](crate::Builder::build) calls it. Describing again is harmless.
pub fn describe() {
    for m in DESCRIBED {
        match (m.kind, m.unit) {
            (Counter, Some(unit)) => metrics::describe_counter!(m.name, unit, m.help),
            (Counter, None) => metrics::describe_counter!(m.name, m.help),
            (Gauge, Some(unit)) => metrics::describe_gauge!(m.name, unit, m.help),
            (Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (Histogram, Some(unit)) => metrics::describe_histogram!(m.name, unit, m.help),
            (Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// Records one reload's outcome; `took` is how long its pipeline ran, when it ran one (a
/// failed health check or an invalid pending change is a rejection without a run).
pub(crate) fn record(outcome: &'static str, version: u64, took: Option<Duration>) {
    metrics::counter!("eac_reload_total", "outcome" => outcome).increment(1);
    if let Some(took) = took {
        metrics::histogram!("eac_publish_duration_seconds").record(took.as_secs_f64());
    }
    let ok = outcome != "rejected";
    metrics::gauge!("eac_config_last_reload_successful").set(if ok { 1.0 } else { 0.0 });
    if ok {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        metrics::gauge!("eac_config_last_reload_success_timestamp_seconds").set(now.as_secs_f64());
    }
    metrics::gauge!("eac_snapshot_version").set(version as f64);
}

/// How many inputs are held back now (rejected while the rest of a change was published).
pub(crate) fn held_back(inputs: usize) {
    metrics::gauge!("eac_inputs_held_back").set(inputs as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `counter!`, `gauge!` and `histogram!` in the crate's source names a described
    /// metric of that kind: a new metric without help text fails here, not in a scrape.
    #[test]
    fn every_recorded_metric_is_described() {
        let mut recorded = Vec::new();
        let mut folders = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (kind, macro_name) in [
                        (Counter, "counter!(\""),
                        (Gauge, "gauge!(\""),
                        (Histogram, "histogram!(\""),
                    ] {
                        for (at, _) in text.match_indices(macro_name) {
                            let rest = &text[at + macro_name.len()..];
                            let name = &rest[..rest.find('"').unwrap()];
                            recorded.push((name.to_owned(), kind, path.clone()));
                        }
                    }
                }
            }
        }
        assert!(recorded.len() >= 10, "found only {recorded:?}");
        for (name, kind, path) in &recorded {
            assert!(
                DESCRIBED.iter().any(|m| m.name == name && m.kind == *kind),
                "`{name}` ({kind:?}, recorded in {}) is not in DESCRIBED",
                path.display()
            );
        }
        for m in DESCRIBED {
            assert_eq!(
                m.name.ends_with("_total"),
                m.kind == Counter,
                "`{}`: counters, and only they, end in `_total`",
                m.name
            );
            if m.unit == Some(Unit::Seconds) {
                assert!(m.name.ends_with("_seconds"), "`{}`", m.name);
            }
        }
    }
}
