//! Metrics through the `metrics` facade, under Prometheus-style names.

use eac_accessor::Origin;
use eac_tests::{ConfigDir, app_with};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use crate::accessor_for;

#[test]
fn reloads_are_counted_by_outcome_with_version_and_success_gauges() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let dir = ConfigDir::with_app();
        let accessor = accessor_for(&dir).unwrap();
        dir.write(
            "app.toml",
            &app_with("message = \"hello\"", "message = \"hi\""),
        );
        accessor.reload(Origin::Refresh).unwrap();
        accessor.reload(Origin::Refresh).unwrap();
        dir.write("app.toml", &app_with("message = \"hello\"", "message = 1"));
        accessor.reload(Origin::Refresh).unwrap_err();
    });

    let mut counters = Vec::new();
    let mut gauges = std::collections::BTreeMap::new();
    let mut histogram_samples = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        match value {
            DebugValue::Counter(n) => {
                let labels: Vec<_> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                counters.push(format!("{name}{{{}}} {n}", labels.join(",")));
            }
            DebugValue::Gauge(g) => {
                gauges.insert(name, g.into_inner());
            }
            DebugValue::Histogram(samples) => {
                assert_eq!(name, "eac_publish_duration_seconds");
                histogram_samples += samples.len();
            }
        }
    }
    counters.sort();
    assert_eq!(
        counters,
        [
            "eac_reload_total{outcome=published} 2",
            "eac_reload_total{outcome=rejected} 1",
            "eac_reload_total{outcome=unchanged} 1",
        ]
    );
    assert_eq!(histogram_samples, 4);
    assert_eq!(gauges["eac_snapshot_version"], 2.0);
    assert_eq!(gauges["eac_config_last_reload_successful"], 0.0);
    assert!(gauges["eac_config_last_reload_success_timestamp_seconds"] > 1.7e9);
}
