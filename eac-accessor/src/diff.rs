//! Structural diffs of configuration documents, each change classified.
//!
//! | class | when |
//! |---|---|
//! | [`Class::Safe`] | a value changed, same type, and the schema accepts it |
//! | [`Class::Warning`] | a key was added, or an optional key removed (a default now applies) |
//! | [`Class::Restart`] | a safe or warning change to a field read only at start (`#[eac(restart)]`): it applies after a restart |
//! | [`Class::Breaking`] | a type changed, a required key or a whole section was removed, or the schema rejects the new value |
//!
//! Arrays are compared whole. A secret's change is listed, its values are not.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind};
use crate::validate::{dotted_segments, is_secret_at, touches_secret_at};

/// How risky a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// A value change the schema accepts.
    Safe,
    /// A key added, or an optional key removed.
    Warning,
    /// A change of a field read only at start (`#[eac(restart)]`): published, but it
    /// applies only after the service restarts.
    Restart,
    /// A type change, a required key or a section removed, or a value the schema rejects.
    Breaking,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Safe => "safe",
            Class::Warning => "warning",
            Class::Restart => "restart",
            Class::Breaking => "breaking",
        })
    }
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The key is new.
    Added,
    /// The key is gone.
    Removed,
    /// The value changed, same JSON type.
    Changed,
    /// The value changed to another JSON type.
    TypeChanged,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Change {
    /// The dotted key.
    pub key: String,
    /// What happened to it.
    pub kind: ChangeKind,
    /// How risky it is.
    pub class: Class,
    /// Why it has that class.
    pub reason: String,
    /// The value before (absent when added; `"[redacted]"` for a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after (absent when removed; `"[redacted]"` for a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

/// Every change between two documents, in key order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    /// The changes.
    pub changes: Vec<Change>,
}

impl Diff {
    /// Whether the documents are equal.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The riskiest class present, if any change.
    pub fn worst(&self) -> Option<Class> {
        self.changes.iter().map(|c| c.class).max()
    }
}

impl fmt::Display for Diff {
    /// One line per change: `~ key: old → new  [class: reason]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return f.write_str("no changes");
        }
        for (i, c) in self.changes.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let show = |v: &Option<Value>| v.as_ref().map_or(String::new(), Value::to_string);
            match c.kind {
                ChangeKind::Added => write!(f, "+ {}: {}", c.key, show(&c.new))?,
                ChangeKind::Removed => write!(f, "- {}: {}", c.key, show(&c.old))?,
                ChangeKind::Changed | ChangeKind::TypeChanged => {
                    write!(f, "~ {}: {} → {}", c.key, show(&c.old), show(&c.new))?
                }
            }
            write!(f, "  [{}: {}]", c.class, c.reason)?;
        }
        Ok(())
    }
}

/// What the classification needs to know about the candidate.
pub(crate) struct Context<'a> {
    pub(crate) secrets: &'a [String],
    /// The fields read only at start.
    pub(crate) restarts: &'a [String],
    pub(crate) sections: &'a [&'static str],
    /// The candidate's validation errors, if it was rejected.
    pub(crate) errors: &'a [Error],
}

/// The classified diff from `old` to `new`.
pub(crate) fn diff(old: &Value, new: &Value, cx: &Context<'_>) -> Diff {
    let mut changes = Vec::new();
    walk(&mut Vec::new(), Some(old), Some(new), cx, &mut changes);
    Diff { changes }
}

/// `path` holds the segments of the key: a map key may hold a dot.
fn walk(
    path: &mut Vec<String>,
    old: Option<&Value>,
    new: Option<&Value>,
    cx: &Context<'_>,
    out: &mut Vec<Change>,
) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a
                .keys()
                .chain(b.keys().filter(|k| !a.contains_key(*k)))
                .collect();
            keys.sort();
            for k in keys {
                path.push(k.clone());
                walk(path, a.get(k), b.get(k), cx, out);
                path.pop();
            }
        }
        (Some(a), Some(b)) if a == b => {}
        (old, new) => out.push(classify(path, old, new, cx)),
    }
}

/// Whether `key` is a field read only at start, or inside one.
pub(crate) fn needs_restart(key: &str, restarts: &[String]) -> bool {
    restarts.iter().any(|r| {
        key == r
            || key
                .strip_prefix(r.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

fn classify(
    path: &mut Vec<String>,
    old: Option<&Value>,
    new: Option<&Value>,
    cx: &Context<'_>,
) -> Change {
    let key = path.join(".");
    let rejected_here = |kinds: &[ErrorKind]| {
        cx.errors.iter().any(|e| {
            kinds.contains(&e.kind())
                && e.key().is_some_and(|k| {
                    k == key
                        || k.strip_prefix(key.as_str())
                            .is_some_and(|r| r.starts_with('.'))
                })
        })
    };
    let value_errors = [
        ErrorKind::Schema,
        ErrorKind::Deserialize,
        ErrorKind::Validation,
    ];
    let (kind, class, reason) = match (old, new) {
        (None, _) if rejected_here(&value_errors) => (
            ChangeKind::Added,
            Class::Breaking,
            "key added that the schema rejects".to_owned(),
        ),
        (None, _) => (ChangeKind::Added, Class::Warning, "key added".to_owned()),
        (_, None) if cx.sections.contains(&key.as_str()) => (
            ChangeKind::Removed,
            Class::Breaking,
            "section removed".to_owned(),
        ),
        (_, None) if rejected_here(&[ErrorKind::MissingKey]) => (
            ChangeKind::Removed,
            Class::Breaking,
            "required key removed".to_owned(),
        ),
        (_, None) => (
            ChangeKind::Removed,
            Class::Warning,
            "optional key removed: a default now applies".to_owned(),
        ),
        (Some(a), Some(b)) if type_name(a) != type_name(b) => (
            ChangeKind::TypeChanged,
            Class::Breaking,
            format!("type changed from {} to {}", type_name(a), type_name(b)),
        ),
        _ if rejected_here(&value_errors) => (
            ChangeKind::Changed,
            Class::Breaking,
            "the schema does not accept the new value".to_owned(),
        ),
        _ => (ChangeKind::Changed, Class::Safe, "value changed".to_owned()),
    };
    let (class, reason) = if class < Class::Breaking && needs_restart(&key, cx.restarts) {
        (Class::Restart, format!("{reason}; applies after a restart"))
    } else {
        (class, reason)
    };
    Change {
        old: old.map(|v| redact_at(path, v, cx.secrets)),
        new: new.map(|v| redact_at(path, v, cx.secrets)),
        key,
        kind,
        class,
        reason,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "map",
    }
}

/// Reports each key of `set` (as segments) as one "secret set" change, whatever its old
/// and new values, in place of what the diff found at or under it: a preview of an
/// overlay must never tell whether the value it sets equals the current secret.
pub(crate) fn secrets_set(
    diff: &mut Diff,
    set: &[Vec<String>],
    old: &Value,
    new: &Value,
    cx: &Context<'_>,
) {
    for path in set {
        let key = path.join(".");
        let under = |k: &str| {
            k.strip_prefix(key.as_str())
                .is_some_and(|r| r.starts_with('.'))
        };
        diff.changes.retain(|c| c.key != key && !under(&c.key));
        // A change above it (a whole section added) already shows it redacted.
        let above = diff.changes.iter().any(|c| {
            key.strip_prefix(c.key.as_str())
                .is_some_and(|r| r.starts_with('.'))
        });
        if above {
            continue;
        }
        let (old, new) = (at(old, path), at(new, path));
        let rejected = cx.errors.iter().any(|e| {
            matches!(
                e.kind(),
                ErrorKind::Schema | ErrorKind::Deserialize | ErrorKind::Validation
            ) && e.key().is_some_and(|k| k == key || under(k))
        });
        let kind = if old.is_some() {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        let class = match (rejected, old) {
            (true, _) => Class::Breaking,
            (false, None) => Class::Warning,
            (false, Some(_)) => Class::Safe,
        };
        let mut path = path.clone();
        diff.changes.push(Change {
            old: old.map(|v| redact_at(&mut path, v, cx.secrets)),
            new: new.map(|v| redact_at(&mut path, v, cx.secrets)),
            key,
            kind,
            class,
            reason: "secret set (never compared with the current value)".to_owned(),
        });
    }
    diff.changes.sort_by(|a, b| a.key.cmp(&b.key));
}

/// The value at the key whose segments are `path`.
fn at<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

/// The keys where `overlay` sets a secret, or something holding one, as segments.
pub(crate) fn secret_keys_set(overlay: &Value, secrets: &[String]) -> Vec<Vec<String>> {
    fn walk(value: &Value, path: &mut Vec<String>, secrets: &[String], out: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) if !is_secret_at(secrets, path) => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(v, path, secrets, out);
                    path.pop();
                }
            }
            // A list is compared whole: one that holds secrets is a secret set.
            _ if touches_secret_at(secrets, path) => out.push(path.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(overlay, &mut Vec::new(), secrets, &mut out);
    out
}

/// `value` at dotted `key` with every secret inside it replaced by `"[redacted]"`.
pub(crate) fn redact(key: &str, value: &Value, secrets: &[String]) -> Value {
    let mut path = dotted_segments(key)
        .into_iter()
        .map(str::to_owned)
        .collect();
    redact_at(&mut path, value, secrets)
}

/// [`redact`] at the key whose segments are `path` (left as it was found).
pub(crate) fn redact_at(path: &mut Vec<String>, value: &Value, secrets: &[String]) -> Value {
    if !touches_secret_at(secrets, path) {
        return value.clone();
    }
    if is_secret_at(secrets, path) {
        return Value::from("[redacted]");
    }
    let mut child = |segment: String, v: &Value| {
        path.push(segment);
        let shown = redact_at(path, v, secrets);
        path.pop();
        shown
    };
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), child(k.clone(), v)))
                .collect::<Map<_, _>>(),
        ),
        // A list of sections with secrets (`routes.*.token`): each item on its own.
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| child(i.to_string(), v))
                .collect(),
        ),
        // A scalar where a secret's table belongs is not shown either.
        _ => Value::from("[redacted]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_reaches_nested_secrets_only() {
        let secrets = vec!["up.key".to_owned()];
        let v = json!({"url": "u", "key": "k"});
        assert_eq!(
            redact("up", &v, &secrets),
            json!({"url": "u", "key": "[redacted]"})
        );
        assert_eq!(redact("up.key", &json!("k"), &secrets), json!("[redacted]"));
        assert_eq!(redact("other", &v, &secrets), v);
        assert_eq!(
            redact("", &json!({"up": v}), &secrets),
            json!({"up": {"url": "u", "key": "[redacted]"}})
        );
    }

    #[test]
    fn redaction_reaches_every_element_of_lists_and_maps() {
        let secrets = vec!["up.keys.*".to_owned(), "up.routes.*.token".to_owned()];
        let v = json!({
            "keys": ["a", "b"],
            "routes": [{"path": "/", "token": "t"}],
            "url": "u",
        });
        assert_eq!(
            redact("up", &v, &secrets),
            json!({
                "keys": ["[redacted]", "[redacted]"],
                "routes": [{"path": "/", "token": "[redacted]"}],
                "url": "u",
            })
        );
    }
}
