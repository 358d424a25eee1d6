//! A value that never shows itself: for secret fields of sections that derive `Debug`.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};

/// A secret value: its `Debug` and `Display` print `[redacted]`; serde and the JSON
/// Schema see the value inside as if it were not wrapped.
///
/// A section derives `Debug` as usual and types its secret fields as `Secret<T>`, so
/// that no `{:?}` shows them (or asks `#[derive(EaCSection)]` for a redacting `Debug`
/// with `#[eac(debug)]`). The derive also finds a `Secret<T>` field by its type and lists it in
/// [`EaCSection::secret_paths`](crate::EaCSection::secret_paths), which keeps it out of
/// errors, diffs, previews and history; in a hand-written impl, list it there.
///
/// ```
/// use eac_accessor::{EaCSection, Secret};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize, JsonSchema)]
/// struct Upstream {
///     url: String,
///     api_key: Secret<String>,
/// }
/// impl EaCSection for Upstream {
///     const PATH: &'static str = "upstream";
///     fn secret_paths() -> Vec<String> {
///         vec!["api_key".to_owned()]
///     }
/// }
///
/// let upstream: Upstream = serde_json::from_str(r#"{"url": "https://up", "api_key": "k-123"}"#)?;
/// assert_eq!(upstream.api_key.expose(), "k-123");
/// assert_eq!(
///     format!("{upstream:?}"),
///     r#"Upstream { url: "https://up", api_key: [redacted] }"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value, for the code that uses it (not for logs).
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The value, unwrapped.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: JsonSchema> JsonSchema for Secret<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_and_is_transparent() {
        let s: Secret<String> = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(
            format!("{s} {s:?} {:?}", Some(&s)),
            "[redacted] [redacted] Some([redacted])"
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        assert_eq!(
            schemars::schema_for!(Secret<String>),
            schemars::schema_for!(String)
        );
    }
}
