//! `GET metrics` on a real admin server: the Prometheus text parsed back, its names and
//! values checked after a publish, a rejection and a rollback.
//!
//! The recorder is this test thread's own (`metrics::set_default_local_recorder`), so
//! nothing global is installed and no other test's reloads are counted. The test runs on
//! a current-thread runtime and reloads through the accessor on that thread; the server
//! renders through the recorder's handle, which works from any thread.

mod admin_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use admin_harness::{Auth, READ_TOKEN, Server, TOKEN, app_toml};
use axum::Router;
use eac_accessor::{EaCAccessor, Origin};
use eac_tower::admin::{self, AdminConfig};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The Prometheus text format, parsed: every sample, and each family's `# TYPE`.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut parsed = Exposition::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                parsed.types.insert(name.to_owned(), kind.trim().to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample: series value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a value: {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "not a metric name: {name}"
            );
            parsed.samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
        parsed
    }

    /// The value of the one sample `name` with `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}\n{self:?}");
        found[0].value
    }

    /// Every family name, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.types.keys().cloned().collect();
        names.extend(self.samples.iter().map(|s| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| s.name.strip_suffix(suffix))
                .filter(|family| self.types.contains_key(*family));
            family.unwrap_or(&s.name).to_owned()
        }));
        names.into_iter().collect()
    }
}

/// `a="x",b="y"` (values may hold escaped quotes).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end..].trim_start_matches(',');
    }
    labels
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn scrape(server: &Server) -> Exposition {
    let reply = server
        .send("GET", "/metrics", Auth::Bearer(READ_TOKEN), "")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        reply.headers
    );
    Exposition::parse(&reply.text)
}

#[tokio::test(flavor = "current_thread")]
async fn metrics_follow_a_publish_a_rejection_and_a_rollback() {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), admin::SECONDS_BUCKETS)
        .unwrap()
        .build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let started = now();

    let mut accessor: Option<EaCAccessor> = None;
    let server = Server::start_on("127.0.0.1:0", |setup| {
        accessor = Some(setup.accessor.clone());
        let config = AdminConfig::new()
            .token(Some(TOKEN))
            .read_token(Some(READ_TOKEN))
            .metrics(move || handle.render())
            .shutdown_signal(setup.until_stopped());
        Router::new().nest(
            admin::DEFAULT_PREFIX,
            admin::router(setup.accessor.clone(), config),
        )
    })
    .await;
    let accessor = accessor.unwrap();

    // A read route: closed without a token.
    let refused = server.send("GET", "/metrics", Auth::None, "").await;
    assert_eq!(refused.status, 401, "{}", refused.text);

    // Version 1 at start.
    let start = scrape(&server).await;
    assert_eq!(start.value("eac_snapshot_version", &[]), 1.0);
    assert_eq!(
        start.value("eac_reload_total", &[("outcome", "published")]),
        1.0
    );

    // A publish.
    server.write(&app_toml("2048", "\"another\""));
    accessor.reload(Origin::Refresh).unwrap();
    let published = scrape(&server).await;
    assert_eq!(published.value("eac_snapshot_version", &[]), 2.0);
    assert_eq!(
        published.value("eac_reload_total", &[("outcome", "published")]),
        2.0
    );
    assert_eq!(
        published.value("eac_config_last_reload_successful", &[]),
        1.0
    );
    let success = published.value("eac_config_last_reload_success_timestamp_seconds", &[]);
    assert!(success >= started.floor() && success <= now(), "{success}");

    // A rejection: counted, the last reload unsuccessful, the version kept.
    server.write(&app_toml("0", "\"another\""));
    accessor.reload(Origin::Refresh).unwrap_err();
    let rejected = scrape(&server).await;
    assert_eq!(
        rejected.value("eac_reload_total", &[("outcome", "rejected")]),
        1.0
    );
    assert_eq!(
        rejected.value("eac_config_last_reload_successful", &[]),
        0.0
    );
    assert_eq!(rejected.value("eac_snapshot_version", &[]), 2.0);
    assert_eq!(
        rejected.value("eac_config_last_reload_success_timestamp_seconds", &[]),
        success,
        "a rejection is not a success"
    );

    // A rollback publishes version 3.
    accessor.rollback_to(1).unwrap();
    let rolled = scrape(&server).await;
    assert_eq!(rolled.value("eac_snapshot_version", &[]), 3.0);
    assert_eq!(
        rolled.value("eac_reload_total", &[("outcome", "published")]),
        3.0
    );
    assert_eq!(rolled.value("eac_config_last_reload_successful", &[]), 1.0);

    // The publish duration is a histogram with buckets, one observation per reload.
    assert_eq!(
        rolled
            .types
            .get("eac_publish_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    let count = rolled.value("eac_publish_duration_seconds_count", &[]);
    assert_eq!(count, 4.0, "start, publish, rejection, rollback");
    assert_eq!(
        rolled.value("eac_publish_duration_seconds_bucket", &[("le", "+Inf")]),
        count
    );
    let buckets = rolled
        .samples
        .iter()
        .filter(|s| s.name == "eac_publish_duration_seconds_bucket")
        .count();
    assert_eq!(buckets, admin::SECONDS_BUCKETS.len() + 1);

    // No version, hash or ETag as a label: a label's values must stay few.
    for sample in &rolled.samples {
        for label in sample.labels.keys() {
            assert!(
                ["outcome", "le", "quantile"].contains(&label.as_str()),
                "unexpected label {label} on {sample:?}"
            );
        }
    }
    insta::assert_json_snapshot!("metric_names", rolled.names());

    server.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn without_a_recorder_the_route_says_how_to_turn_it_on() {
    let server = Server::start(AdminConfig::new().read_token(Some(READ_TOKEN))).await;
    assert_eq!(
        server.send("GET", "/metrics", Auth::None, "").await.status,
        401,
        "still a read route"
    );
    let off = server
        .send("GET", "/metrics", Auth::Header(READ_TOKEN), "")
        .await;
    assert_eq!(off.status, 404, "{}", off.text);
    let message = off.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("AdminConfig::metrics") && message.contains("PrometheusBuilder"),
        "{message}"
    );
    server.stop().await;
}
