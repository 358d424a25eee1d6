//! Turning JSON Schema and serde failures into eac [`Error`]s that never leak secrets.
//!
//! jsonschema's own messages quote the offending value; ours quote a value only when it
//! is a short scalar outside every secret path, and otherwise say only its type.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use crate::error::{Error, ErrorKind, pointer_to_dotted};
use crate::keys::schema_type;
use crate::section::{SectionSpec, join_key};

/// Whether `key` is a secret, lies inside one, or contains one.
pub(crate) fn touches_secret(secrets: &[String], key: &str) -> bool {
    secrets.iter().any(|s| {
        s == key
            || key
                .strip_prefix(s.as_str())
                .is_some_and(|r| r.starts_with('.'))
            || key.is_empty()
            || s.strip_prefix(key).is_some_and(|r| r.starts_with('.'))
    })
}

/// Every schema violation of the section's value, as errors keyed by absolute dotted path.
pub(crate) fn schema_errors(spec: &SectionSpec, value: &Value) -> Vec<Error> {
    if spec.validator.is_valid(value) {
        return Vec::new();
    }
    spec.validator
        .iter_errors(value)
        .flat_map(|e| {
            let key = join_key(spec.path, &pointer_to_dotted(e.instance_path().as_str()));
            describe(spec, key, e.kind(), e.instance())
        })
        .collect()
}

fn describe(
    spec: &SectionSpec,
    key: String,
    kind: &ValidationErrorKind,
    found: &Value,
) -> Vec<Error> {
    let secret = touches_secret(&spec.secrets, &key);
    let found_text = || found_text(found, secret);
    let schema =
        |message: String| vec![Error::new(ErrorKind::Schema, message).with_key(key.clone())];
    match kind {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            vec![
                // `publish` says which sources set the section.
                Error::new(ErrorKind::MissingKey, "missing").with_key(join_key(&key, &name)),
            ]
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                Error::new(
                    ErrorKind::UnknownKey,
                    "unknown key: the section has no field of that name",
                )
                .with_key(join_key(&key, name))
            })
            .collect(),
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            schema(format!("expected {expected}, found {}", found_text()))
        }
        ValidationErrorKind::Minimum { limit } => schema(format!(
            "expected a value >= {limit}, found {}",
            found_text()
        )),
        ValidationErrorKind::Maximum { limit } => schema(format!(
            "expected a value <= {limit}, found {}",
            found_text()
        )),
        ValidationErrorKind::ExclusiveMinimum { limit } => schema(format!(
            "expected a value > {limit}, found {}",
            found_text()
        )),
        ValidationErrorKind::ExclusiveMaximum { limit } => schema(format!(
            "expected a value < {limit}, found {}",
            found_text()
        )),
        ValidationErrorKind::MinLength { limit } => schema(format!(
            "expected at least {limit} character(s), found {}",
            found_text()
        )),
        ValidationErrorKind::MaxLength { limit } => schema(format!(
            "expected at most {limit} character(s), found {}",
            found_text()
        )),
        ValidationErrorKind::MinItems { limit } => {
            schema(format!("expected at least {limit} item(s)"))
        }
        ValidationErrorKind::MaxItems { limit } => {
            schema(format!("expected at most {limit} item(s)"))
        }
        ValidationErrorKind::Pattern { pattern } => schema(format!(
            "expected a string matching `{pattern}`, found {}",
            found_text()
        )),
        ValidationErrorKind::Enum { options } => {
            schema(format!("expected one of {options}, found {}", found_text()))
        }
        ValidationErrorKind::Constant { expected_value } if !secret => {
            schema(format!("expected {expected_value}, found {}", found_text()))
        }
        ValidationErrorKind::Format { format } => schema(format!(
            "expected a value of format `{format}`, found {}",
            found_text()
        )),
        // Everything else (oneOf, not, uniqueItems, …): the rule's keyword, value masked.
        _ => schema(format!(
            "violates the schema's `{}` rule, found {}",
            kind.keyword(),
            found_text()
        )),
    }
}

/// `string "abc"` for a short scalar outside secrets; else just the type (`a string`).
fn found_text(found: &Value, secret: bool) -> String {
    let type_name = match schema_type(found) {
        "object" => "map",
        other => other,
    };
    if secret {
        return format!("{type_name} (secret, value hidden)");
    }
    match found {
        Value::Bool(_) | Value::Number(_) => format!("{type_name} {found}"),
        Value::String(s) if s.chars().count() <= 64 => format!("{type_name} {found}"),
        Value::String(s) => format!("{type_name} of {} characters", s.chars().count()),
        _ => type_name.to_owned(),
    }
}

/// A serde failure after the schema passed (rare: the schema and type disagree).
pub(crate) fn deserialize_error(
    spec: &SectionSpec,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> Error {
    let rel = e.path().to_string();
    let rel = if rel == "." { String::new() } else { rel };
    let key = join_key(spec.path, &rel);
    let message = if touches_secret(&spec.secrets, &key) {
        "the value does not fit the field's type (secret, value hidden)".to_owned()
    } else {
        e.inner().to_string()
    };
    Error::new(ErrorKind::Deserialize, message).with_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_touching() {
        let secrets = vec!["upstream.api_key".to_owned()];
        assert!(touches_secret(&secrets, "upstream.api_key"));
        assert!(touches_secret(&secrets, "upstream.api_key.inner"));
        assert!(touches_secret(&secrets, "upstream"));
        assert!(!touches_secret(&secrets, "upstream.url"));
        assert!(!touches_secret(&secrets, "upstream.api_key_id"));
        assert!(!touches_secret(&secrets, "up"));
    }

    #[test]
    fn found_text_hides_secrets_and_long_strings() {
        assert_eq!(found_text(&Value::from("abc"), false), "string \"abc\"");
        assert_eq!(
            found_text(&Value::from("abc"), true),
            "string (secret, value hidden)"
        );
        assert_eq!(
            found_text(&Value::from("x".repeat(100)), false),
            "string of 100 characters"
        );
        assert_eq!(found_text(&serde_json::json!({"a": 1}), false), "map");
        assert_eq!(found_text(&Value::from(7), false), "integer 7");
    }
}
