//! Counters and gauges through the `metrics` facade; names in [`crate::docs::metrics`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
