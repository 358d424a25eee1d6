//! The environment overlay.

use std::collections::BTreeMap;
use std::sync::Arc;

use figment::value::{Dict, Value as FigValue};

use super::{Layer, Source};
use crate::error::{Error, ErrorKind, SourceName};

/// Environment variables with a prefix, nested by a separator: `APP_LIMITS__MAX_BODY_BYTES=5`
/// sets `limits.max_body_bytes` to `5`.
///
/// Keys are lower-cased. Values are read as TOML-like scalars (`8080` is an integer,
/// `true` a boolean, `[1, 2]` an array, anything else a string). Errors name the variable,
/// never its value.
///
/// ```
/// use eac_accessor::source::Env;
///
/// let env = Env::prefixed("APP_");
/// // In tests, or to read from somewhere else than the process environment:
/// let fixed = Env::prefixed("APP_").vars([("APP_GREETING__MESSAGE", "hi")]);
/// # let _ = (env, fixed);
/// ```
#[derive(Clone)]
pub struct Env {
    prefix: String,
    separator: String,
    vars: Option<Arc<Vec<(String, String)>>>,
}

impl Env {
    /// Variables whose names start with `prefix` (ASCII case-insensitive), nested by `__`.
    pub fn prefixed(prefix: impl Into<String>) -> Self {
        Env {
            prefix: prefix.into(),
            separator: "__".to_owned(),
            vars: None,
        }
    }

    /// Sets the nesting separator (default `__`).
    pub fn separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// Reads these variables instead of the process environment.
    pub fn vars<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.vars = Some(Arc::new(vars));
        self
    }

    fn key_of(&self, var: &str) -> Option<Vec<String>> {
        let head = var.get(..self.prefix.len())?;
        if !head.eq_ignore_ascii_case(&self.prefix) {
            return None;
        }
        let rest = &var[self.prefix.len()..];
        let parts: Vec<String> = rest
            .split(self.separator.as_str())
            .map(str::to_ascii_lowercase)
            .collect();
        parts.iter().all(|p| !p.is_empty()).then_some(parts)
    }
}

// Never the values: they may hold secrets.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("prefix", &self.prefix)
            .field("separator", &self.separator)
            .field("fixed_vars", &self.vars.as_ref().map(|v| v.len()))
            .finish()
    }
}

impl Source for Env {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        let process;
        let vars: &[(String, String)] = match &self.vars {
            Some(vars) => vars,
            None => {
                process = std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                    .collect::<Vec<_>>();
                &process
            }
        };
        let mut sorted: Vec<_> = vars
            .iter()
            .filter_map(|(var, value)| Some((self.key_of(var)?, var, value)))
            .collect();
        // Deterministic, and a parent key comes before its children.
        sorted.sort();

        let mut data = Dict::new();
        let mut names = BTreeMap::new();
        let mut errors = Vec::new();
        for (parts, var, value) in sorted {
            let value: FigValue = value.parse().unwrap_or_else(|e| match e {});
            if insert(&mut data, &parts, value).is_err() {
                errors.push(
                    Error::new(
                        ErrorKind::Parse,
                        "sets a key below one that another variable sets to a plain value",
                    )
                    .with_key(parts.join("."))
                    .with_source(SourceName::EnvVar(var.clone())),
                );
                continue;
            }
            names.insert(parts.join("."), var.clone());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut layer = Layer::from_serialize(SourceName::Env(self.prefix.clone()), &data)
            .map_err(|e| vec![e])?;
        layer.env_vars = Some(Arc::new(names));
        Ok(vec![layer])
    }
}

/// Inserts `value` at `parts`; fails when a prefix of `parts` already holds a non-map.
fn insert(dict: &mut Dict, parts: &[String], value: FigValue) -> Result<(), ()> {
    let (last, parents) = parts.split_last().ok_or(())?;
    let mut current = dict;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| FigValue::from(Dict::new()));
        current = match entry {
            FigValue::Dict(_, d) => d,
            _ => return Err(()),
        };
    }
    match current.get(last) {
        Some(FigValue::Dict(..)) => Err(()),
        _ => {
            current.insert(last.clone(), value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_lowercases_and_parses_scalars() {
        let layers = Env::prefixed("APP_")
            .vars([
                ("APP_LIMITS__MAX_BODY_BYTES", "5"),
                ("APP_FEATURES__SHOUT", "true"),
                ("APP_GREETING__MESSAGE", "hello world"),
                ("OTHER_X", "1"),
                ("APP_", "ignored"),
                ("APP_A____B", "ignored"),
            ])
            .load()
            .unwrap();
        let merged = super::super::merge(layers).unwrap();
        assert_eq!(
            merged.document,
            serde_json::json!({
                "limits": {"max_body_bytes": 5},
                "features": {"shout": true},
                "greeting": {"message": "hello world"},
            })
        );
        assert_eq!(
            merged.provenance().source_of("limits.max_body_bytes"),
            Some(SourceName::EnvVar("APP_LIMITS__MAX_BODY_BYTES".into()))
        );
    }

    #[test]
    fn conflicting_variables_are_reported_by_name() {
        let errors = Env::prefixed("APP_")
            .vars([("APP_A", "1"), ("APP_A__B", "2")])
            .load()
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].source(),
            Some(&SourceName::EnvVar("APP_A__B".into()))
        );
    }
}
