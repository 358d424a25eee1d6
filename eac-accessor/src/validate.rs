//! Turning JSON Schema and serde failures into eac [`Error`]s that never leak secrets.
//!
//! jsonschema's own messages quote the offending value; ours quote a value only when it
//! is a short scalar outside every secret path, and otherwise say only its type.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use crate::error::join_key;
use crate::error::{Error, ErrorKind, pointer_to_dotted};
use crate::keys::schema_type;

/// Whether dotted `key` is a secret, lies inside one, or contains one.
///
/// A secret path's segment `*` stands for any one element of a list or key of a map
/// (`tokens.*` for a map of secrets, `routes.*.api_key` for a list of sections).
pub(crate) fn touches_secret(secrets: &[String], key: &str) -> bool {
    touches_secret_at(secrets, &dotted_segments(key))
}

/// [`touches_secret`] for a key given as its segments, for a walk that knows them (a
/// map key may hold a dot).
pub(crate) fn touches_secret_at<S: AsRef<str>>(secrets: &[String], key: &[S]) -> bool {
    secrets.iter().any(|secret| {
        let mut pattern = secret.split('.');
        for segment in key {
            match pattern.next() {
                // `key` lies inside the secret.
                None => return true,
                Some(p) if p == "*" || p == segment.as_ref() => {}
                Some(_) => return false,
            }
        }
        // `key` is the secret, or holds it.
        true
    })
}

/// Whether the key given as its segments is a secret or lies inside one.
pub(crate) fn is_secret_at<S: AsRef<str>>(secrets: &[String], key: &[S]) -> bool {
    secrets.iter().any(|secret| {
        let pattern: Vec<&str> = secret.split('.').collect();
        pattern.len() <= key.len()
            && pattern
                .iter()
                .zip(key)
                .all(|(p, segment)| *p == "*" || *p == segment.as_ref())
    })
}

/// `a.b.c` as its segments; none for the empty key (the whole document).
pub(crate) fn dotted_segments(key: &str) -> Vec<&str> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    }
}

/// Every schema violation of the section's value, as errors keyed by absolute dotted path.
pub(crate) fn schema_errors(
    path: &str,
    validator: &jsonschema::Validator,
    secrets: &[String],
    value: &Value,
) -> Vec<Error> {
    if validator.is_valid(value) {
        return Vec::new();
    }
    validator
        .iter_errors(value)
        .flat_map(|e| {
            let pointer = e.instance_path().as_str();
            let key = join_key(path, &pointer_to_dotted(pointer));
            // The pointer's own segments: a map key with a dot is one segment there.
            let mut segments = dotted_segments(path)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            segments.extend(
                pointer
                    .split('/')
                    .skip(1)
                    .map(|seg| seg.replace("~1", "/").replace("~0", "~")),
            );
            let secret = touches_secret_at(secrets, &segments);
            describe(key, secret, e.kind(), e.instance())
        })
        .collect()
}

fn describe(key: String, secret: bool, kind: &ValidationErrorKind, found: &Value) -> Vec<Error> {
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

/// `message` without the value it quotes after `found`, the value's type kept
/// (`…, found string "abc"` → `…, found string (value not shown)`): for what others
/// read, such as a fleet member's NACK in its etcd record.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))] // used by the fleet's NACK
pub(crate) fn without_found_value(message: &str) -> String {
    const FOUND: &str = ", found ";
    let Some(at) = message.rfind(FOUND) else {
        return message.to_owned();
    };
    let rest = &message[at + FOUND.len()..];
    let type_name = rest.split(' ').next().unwrap_or(rest);
    if rest == type_name || rest.ends_with("(secret, value hidden)") {
        return message.to_owned();
    }
    format!("{}{FOUND}{type_name} (value not shown)", &message[..at])
}

/// A serde failure after the schema passed (rare: the schema and type disagree).
pub(crate) fn deserialize_error(
    path: &str,
    secrets: &[String],
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> Error {
    use serde_path_to_error::Segment;
    let mut segments: Vec<String> = dotted_segments(path)
        .into_iter()
        .map(str::to_owned)
        .collect();
    segments.extend(e.path().iter().map(|segment| match segment {
        Segment::Seq { index } => index.to_string(),
        Segment::Map { key } => key.clone(),
        Segment::Enum { variant } => variant.clone(),
        Segment::Unknown => "?".to_owned(),
    }));
    // Dotted like a schema error's key (`list.1`, not serde's `list[1]`).
    let key = segments.join(".");
    let message = if touches_secret_at(secrets, &segments) {
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
    fn a_star_is_any_one_element_or_map_key() {
        let secrets = vec!["up.keys.*".to_owned(), "up.routes.*.token".to_owned()];
        for key in [
            "up",
            "up.keys",
            "up.keys.0",
            "up.keys.a.b",
            "up.routes.3.token",
        ] {
            assert!(touches_secret(&secrets, key), "{key}");
        }
        assert!(!touches_secret(&secrets, "up.routes.3.path"));
        assert!(!touches_secret(&secrets, "up.url"));
        assert!(is_secret_at(&secrets, &["up", "keys", "x"]));
        assert!(!is_secret_at(&secrets, &["up", "keys"]));
        // A map key with a dot is one segment.
        assert!(is_secret_at(&secrets, &["up", "routes", "a.b", "token"]));
        assert!(!touches_secret_at(
            &secrets,
            &["up", "routes", "a.b", "path"]
        ));
    }

    #[test]
    fn a_message_without_its_found_value_keeps_the_type() {
        let said = |v: &Value, secret| {
            format!(
                "expected at most 5 character(s), found {}",
                found_text(v, secret)
            )
        };
        assert_eq!(
            without_found_value(&said(&Value::from("hello there"), false)),
            "expected at most 5 character(s), found string (value not shown)"
        );
        assert_eq!(
            without_found_value(&said(&Value::from(7), false)),
            "expected at most 5 character(s), found integer (value not shown)"
        );
        let hidden = said(&Value::from("sk_live"), true);
        assert_eq!(without_found_value(&hidden), hidden);
        let map = said(&serde_json::json!({"a": 1}), false);
        assert_eq!(without_found_value(&map), map);
        assert_eq!(without_found_value("missing"), "missing");
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
