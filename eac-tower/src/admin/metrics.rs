//! `GET metrics`: the application's metrics in the Prometheus text format.
//!
//! eac records through the [`metrics`](https://docs.rs/metrics) facade and never installs
//! a recorder itself: the application installs one (a `metrics-exporter-prometheus`
//! recorder, typically) and hands its render function to
//! [`AdminConfig::metrics`](super::AdminConfig::metrics).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::reply::error;

/// What renders the metrics page: the whole Prometheus text exposition.
pub type RenderFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Histogram buckets, in seconds, suited to eac's `_seconds` histograms (a publish takes
/// from well under a millisecond to a few seconds).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
///
/// let recorder = PrometheusBuilder::new()
///     .set_buckets_for_metric(
///         Matcher::Suffix("_seconds".into()),
///         eac_tower::admin::SECONDS_BUCKETS,
///     )?
///     .build_recorder();
/// let handle = recorder.handle();
/// let config = eac_tower::admin::AdminConfig::new().metrics(move || handle.render());
/// # drop(config);
/// # Ok(())
/// # }
/// ```
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET metrics`: the rendered page, or 404 saying how to turn it on.
pub(super) async fn metrics(State(render): State<Option<RenderFn>>) -> Response {
    let Some(render) = render else {
        return error(
            StatusCode::NOT_FOUND,
            "metrics are off: install a Prometheus recorder in the application \
             (metrics_exporter_prometheus::PrometheusBuilder) and pass its handle's render \
             function to AdminConfig::metrics",
        );
    };
    // Rendering walks every metric and takes the recorder's locks: not on the runtime.
    match tokio::task::spawn_blocking(move || render()).await {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            text,
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering the metrics failed: {e}"),
        ),
    }
}
