//! The configuration sections of `live_server`.

use eac_accessor::{EaCSection, FieldErrors};
use schemars::JsonSchema;
use serde::Deserialize;

/// `[greeting]`: what `GET /` says.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Greeting {
    /// The message; not empty.
    #[schemars(length(min = 1))]
    pub(crate) message: String,
}

impl EaCSection for Greeting {
    const PATH: &'static str = "greeting";
}

/// `[limits]`: applied per request, live.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    /// The largest request body accepted, in bytes.
    #[schemars(range(min = 1, max = 16_777_216))]
    pub(crate) max_body_bytes: u64,
    /// How long a request may take, in milliseconds.
    #[schemars(range(min = 1, max = 60_000))]
    pub(crate) request_timeout_ms: u64,
}

impl EaCSection for Limits {
    const PATH: &'static str = "limits";
}

/// `[features]`: toggles.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Features {
    /// When true, `GET /` upper-cases the message.
    #[serde(default)]
    pub(crate) shout: bool,
}

impl EaCSection for Features {
    const PATH: &'static str = "features";
}

/// `[upstream]`: where the service would forward, and its secret key.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upstream {
    /// An http(s) URL.
    pub(crate) url: String,
    /// A secret: never shown.
    pub(crate) api_key: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

impl EaCSection for Upstream {
    const PATH: &'static str = "upstream";

    fn secret_paths() -> Vec<String> {
        vec!["api_key".to_owned()]
    }

    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        let rest = self
            .url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"));
        if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
            errors.add("url", "expected an http:// or https:// URL with a host");
        }
        if self.api_key.is_empty() {
            errors.add("api_key", "expected a non-empty key");
        }
        errors.into_result()
    }
}
