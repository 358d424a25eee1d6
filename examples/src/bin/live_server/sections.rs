//! The configuration sections of `live_server`, each a `#[derive(EaCSection)]`.

use eac_accessor::{EaCSection, FieldErrors};
use schemars::JsonSchema;
use serde::Deserialize;

/// `[greeting]`: what `GET /` says.
#[derive(Clone, Deserialize, JsonSchema, EaCSection)]
#[serde(deny_unknown_fields)]
pub(crate) struct Greeting {
    /// The message; not empty.
    #[schemars(length(min = 1))]
    pub(crate) message: String,
}

/// `[limits]`: applied per request, live.
#[derive(Clone, Deserialize, JsonSchema, EaCSection)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    /// The largest request body accepted, in bytes.
    #[schemars(range(min = 1, max = 16_777_216))]
    pub(crate) max_body_bytes: u64,
    /// How long a request may take, in milliseconds.
    #[schemars(range(min = 1, max = 60_000))]
    pub(crate) request_timeout_ms: u64,
}

/// `[features]`: toggles.
#[derive(Clone, Deserialize, JsonSchema, EaCSection)]
#[serde(deny_unknown_fields)]
pub(crate) struct Features {
    /// When true, `GET /` upper-cases the message.
    #[serde(default)]
    pub(crate) shout: bool,
    /// The share of `GET /` requests answered with a 500 (0.0–1.0, default 0): a
    /// configuration that validates but hurts, for canaries and gray releases to catch.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub(crate) fail_ratio: f64,
}

/// `[upstream]`: where the service would forward, and its secret key.
#[derive(Clone, Deserialize, JsonSchema, EaCSection)]
#[serde(deny_unknown_fields)]
#[eac(validate = "check_upstream")]
pub(crate) struct Upstream {
    /// An http(s) URL with a host.
    pub(crate) url: String,
    /// Sent upstream; never shown in errors, logs, diffs or `Debug`.
    #[eac(secret)]
    pub(crate) api_key: String,
}

fn check_upstream(upstream: &Upstream) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    let host = upstream
        .url
        .strip_prefix("https://")
        .or_else(|| upstream.url.strip_prefix("http://"));
    if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
        errors.add("url", "expected an http:// or https:// URL with a host");
    }
    if upstream.api_key.is_empty() {
        errors.add("api_key", "expected a non-empty key");
    }
    errors.into_result()
}

/// `[access]`: which paths `GET /rules` allows; compiled once per change by a resolver
/// (see `rules.rs`). Without the section every path is allowed.
#[derive(Clone, Default, Deserialize, JsonSchema, EaCSection)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Access {
    /// Patterns a path must match one of: a glob (`/api/**`), or a regex when it starts
    /// with `^` (`^/v[0-9]+/`). An empty list allows nothing; no list allows everything.
    pub(crate) rules: Option<Vec<String>>,
}
