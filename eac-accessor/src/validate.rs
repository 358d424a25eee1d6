//! Turning JSON Schema and serde failures into eac [`Error`]s that never leak secrets.
//!
//! jsonschema's own messages quote the offending value; ours quote a value only when it
//! is a short scalar outside every secret path, and otherwise say only its type.

use serde_json::Value;

use crate::error::join_key;
use crate::error::{Error, ErrorKind, pointer_to_dotted};
use crate::keys::schema_type;
#[cfg(not(feature = "jsonschema"))]
use crate::schema_check::Checker;
use crate::schema_check::{Kind, Violation};

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

/// What checks a section's values against its schema: eac's own checker, or with the
/// `jsonschema` feature the `jsonschema` crate (the whole specification).
pub(crate) enum SchemaValidator {
    /// The built-in checker of the keywords derived schemas use.
    #[cfg(not(feature = "jsonschema"))]
    Builtin(Checker),
    /// `jsonschema`'s validator.
    #[cfg(feature = "jsonschema")]
    Full(jsonschema::Validator),
}

impl SchemaValidator {
    /// Compiles `schema`; the reason, when it cannot be checked.
    pub(crate) fn new(schema: &Value) -> Result<SchemaValidator, String> {
        #[cfg(not(feature = "jsonschema"))]
        {
            Checker::new(schema)
                .map(SchemaValidator::Builtin)
                .map_err(|e| {
                    format!(
                        "it uses {e}; turn on eac-accessor's `jsonschema` feature to check the \
                     whole JSON Schema specification"
                    )
                })
        }
        #[cfg(feature = "jsonschema")]
        {
            jsonschema::validator_for(schema)
                .map(SchemaValidator::Full)
                .map_err(|e| e.masked().to_string())
        }
    }

    fn is_valid(&self, value: &Value) -> bool {
        match self {
            #[cfg(not(feature = "jsonschema"))]
            SchemaValidator::Builtin(checker) => checker.is_valid(value),
            #[cfg(feature = "jsonschema")]
            SchemaValidator::Full(validator) => validator.is_valid(value),
        }
    }

    /// Every rule `value` breaks.
    fn violations<'v>(&self, value: &'v Value) -> Vec<Violation<'v>> {
        match self {
            #[cfg(not(feature = "jsonschema"))]
            SchemaValidator::Builtin(checker) => checker.violations(value),
            #[cfg(feature = "jsonschema")]
            SchemaValidator::Full(validator) => validator
                .iter_errors(value)
                .map(|e| {
                    // Where the error points into `value`; the instance there, looked up
                    // (the error's own copy may be owned).
                    let pointer = e.instance_path().as_str().to_owned();
                    let instance = value.pointer(&pointer).unwrap_or(value);
                    Violation {
                        kind: full::kind(e.kind()),
                        pointer,
                        instance,
                    }
                })
                .collect(),
        }
    }
}

/// `jsonschema`'s errors in eac's words.
#[cfg(feature = "jsonschema")]
mod full {
    use jsonschema::error::{TypeKind, ValidationErrorKind};
    use serde_json::Value;

    use crate::schema_check::Kind;

    pub(super) fn kind(kind: &ValidationErrorKind) -> Kind {
        match kind {
            ValidationErrorKind::Required { property } => Kind::Required {
                property: property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_owned),
            },
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                Kind::AdditionalProperties {
                    unexpected: unexpected.clone(),
                }
            }
            ValidationErrorKind::Type { kind } => Kind::Type {
                expected: match kind {
                    TypeKind::Single(t) => vec![t.as_str()],
                    TypeKind::Multiple(set) => set.iter().map(|t| t.as_str()).collect(),
                },
            },
            ValidationErrorKind::Minimum { limit } => Kind::Minimum {
                limit: limit.clone(),
            },
            ValidationErrorKind::Maximum { limit } => Kind::Maximum {
                limit: limit.clone(),
            },
            ValidationErrorKind::ExclusiveMinimum { limit } => Kind::ExclusiveMinimum {
                limit: limit.clone(),
            },
            ValidationErrorKind::ExclusiveMaximum { limit } => Kind::ExclusiveMaximum {
                limit: limit.clone(),
            },
            ValidationErrorKind::MinLength { limit } => Kind::MinLength { limit: *limit },
            ValidationErrorKind::MaxLength { limit } => Kind::MaxLength { limit: *limit },
            ValidationErrorKind::MinItems { limit } => Kind::MinItems { limit: *limit },
            ValidationErrorKind::MaxItems { limit } => Kind::MaxItems { limit: *limit },
            ValidationErrorKind::Pattern { pattern } => Kind::Pattern {
                pattern: pattern.clone(),
            },
            ValidationErrorKind::Enum { options } => Kind::Enum {
                options: Value::clone(options),
            },
            ValidationErrorKind::Constant { expected_value } => Kind::Constant {
                expected: Value::clone(expected_value),
            },
            ValidationErrorKind::Format { format } => Kind::Format {
                format: format.clone(),
            },
            other => Kind::Other {
                keyword: other.keyword().to_owned(),
            },
        }
    }
}

/// Every schema violation of the section's value, as errors keyed by absolute dotted path.
pub(crate) fn schema_errors(
    path: &str,
    validator: &SchemaValidator,
    secrets: &[String],
    value: &Value,
) -> Vec<Error> {
    if validator.is_valid(value) {
        return Vec::new();
    }
    validator
        .violations(value)
        .into_iter()
        .flat_map(|v| {
            let pointer = v.pointer.as_str();
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
            describe(key, secret, &v.kind, v.instance)
        })
        .collect()
}

fn describe(key: String, secret: bool, kind: &Kind, found: &Value) -> Vec<Error> {
    let found_text = || found_text(found, secret);
    let schema =
        |message: String| vec![Error::new(ErrorKind::Schema, message).with_key(key.clone())];
    match kind {
        Kind::Required { property } => {
            vec![
                // `publish` says which sources set the section.
                Error::new(ErrorKind::MissingKey, "missing").with_key(join_key(&key, property)),
            ]
        }
        Kind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                Error::new(
                    ErrorKind::UnknownKey,
                    "unknown key: the section has no field of that name",
                )
                .with_key(join_key(&key, name))
            })
            .collect(),
        Kind::Type { expected } => schema(format!(
            "expected {}, found {}",
            expected.join(" or "),
            found_text()
        )),
        Kind::Minimum { limit } => schema(format!(
            "expected a value >= {limit}, found {}",
            found_text()
        )),
        Kind::Maximum { limit } => schema(format!(
            "expected a value <= {limit}, found {}",
            found_text()
        )),
        Kind::ExclusiveMinimum { limit } => schema(format!(
            "expected a value > {limit}, found {}",
            found_text()
        )),
        Kind::ExclusiveMaximum { limit } => schema(format!(
            "expected a value < {limit}, found {}",
            found_text()
        )),
        Kind::MinLength { limit } => schema(format!(
            "expected at least {limit} character(s), found {}",
            found_text()
        )),
        Kind::MaxLength { limit } => schema(format!(
            "expected at most {limit} character(s), found {}",
            found_text()
        )),
        Kind::MinItems { limit } => schema(format!("expected at least {limit} item(s)")),
        Kind::MaxItems { limit } => schema(format!("expected at most {limit} item(s)")),
        Kind::Pattern { pattern } => schema(format!(
            "expected a string matching `{pattern}`, found {}",
            found_text()
        )),
        Kind::Enum { options } => {
            schema(format!("expected one of {options}, found {}", found_text()))
        }
        Kind::Constant { expected } if !secret => {
            schema(format!("expected {expected}, found {}", found_text()))
        }
        Kind::Format { format } => schema(format!(
            "expected a value of format `{format}`, found {}",
            found_text()
        )),
        // Everything else (oneOf, not, uniqueItems, …): the rule's keyword, value masked.
        Kind::Constant { .. } => schema(format!(
            "violates the schema's `const` rule, found {}",
            found_text()
        )),
        Kind::Other { keyword } => schema(format!(
            "violates the schema's `{keyword}` rule, found {}",
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
