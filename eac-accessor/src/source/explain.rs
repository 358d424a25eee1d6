//! Which source set what, from every layer's input kept with the snapshot it became:
//! the sources that set a section (for a missing key's error), and the sources of one
//! value (for `Snapshot::source_of`).

use std::fmt;

use figment::value::{Dict, Value as FigValue};
use serde_json::Value;

use super::{Content, EnvVarNames, Format, Layer, ParseLimits};
use crate::error::SourceName;

/// A copy of every layer's input, in merge order, kept with the snapshot it became.
///
/// Text is kept as text (a copy, not a parse) and parsed again only when asked.
pub(crate) struct Kept(Vec<KeptLayer>);

struct KeptLayer {
    name: SourceName,
    env_vars: Option<EnvVarNames>,
    content: KeptContent,
}

enum KeptContent {
    Parsed(Dict),
    Text(Format, String, ParseLimits),
}

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the content: it may hold secrets.
        f.debug_list()
            .entries(self.0.iter().map(|l| &l.name))
            .finish()
    }
}

/// Copies the layers' input before they are merged.
pub(crate) fn keep(layers: &[Layer]) -> Kept {
    Kept(
        layers
            .iter()
            .map(|layer| KeptLayer {
                name: layer.name.clone(),
                env_vars: layer.env_vars.clone(),
                content: match &layer.content {
                    Content::Parsed(data) => KeptContent::Parsed(data.clone()),
                    Content::Text {
                        format,
                        text,
                        limits,
                    } => KeptContent::Text(*format, text.clone(), *limits),
                },
            })
            .collect(),
    )
}

impl Kept {
    /// Every layer that has a value at dotted `key`, in merge order, with that value;
    /// an env overlay named by the variable that set `key`.
    pub(crate) fn values_at(&self, key: &str) -> Vec<(SourceName, Value)> {
        self.0
            .iter()
            .filter_map(|layer| {
                let value = layer.with_value_at(key, |v| serde_json::to_value(v).ok())??;
                let name = match layer.env_vars.as_ref().and_then(|vars| vars.get(key)) {
                    Some(var) => SourceName::EnvVar(var.clone()),
                    None => layer.name.clone(),
                };
                Some((name, value))
            })
            .collect()
    }

    /// The sources that set anything at or under dotted `path`, in merge order; an env
    /// overlay is named as a whole, never by the variable of one key under `path`.
    pub(crate) fn setters_of(&self, path: &str) -> Vec<SourceName> {
        self.0
            .iter()
            .filter(|layer| layer.with_value_at(path, |_| ()).is_some())
            .map(|layer| layer.name.clone())
            .collect()
    }
}

impl KeptLayer {
    /// `f` of the value at dotted `key`, if this layer has one. A text that no longer
    /// parses (it parsed when the snapshot was made, so this does not happen) has none.
    fn with_value_at<R>(&self, key: &str, f: impl FnOnce(&FigValue) -> R) -> Option<R> {
        let parsed;
        let data = match &self.content {
            KeptContent::Parsed(data) => data,
            KeptContent::Text(format, text, limits) => {
                parsed = format.parse(text, limits).ok()?;
                &parsed
            }
        };
        find(data, key).map(f)
    }
}

fn find<'d>(data: &'d Dict, key: &str) -> Option<&'d FigValue> {
    let mut segments = key.split('.');
    let mut value = data.get(segments.next()?)?;
    for segment in segments {
        value = match value {
            FigValue::Dict(_, dict) => dict.get(segment)?,
            FigValue::Array(_, items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::super::{Format, Layer, merge};
    use super::*;

    #[test]
    fn kept_layers_answer_every_value_at_a_key_in_order() {
        let a = Layer::text(
            SourceName::Memory("a".into()),
            Format::Toml,
            "[s]\nx = 1\ny = 2\n",
        );
        let b = Layer::text(
            SourceName::Memory("b".into()),
            Format::Json,
            r#"{"s": {"y": 3}}"#,
        );
        let layers = vec![a, b];
        let kept = keep(&layers);
        merge(layers).unwrap();
        assert_eq!(
            kept.values_at("s.y"),
            [
                (SourceName::Memory("a".into()), Value::from(2)),
                (SourceName::Memory("b".into()), Value::from(3)),
            ]
        );
        assert_eq!(kept.values_at("s.x").len(), 1);
        assert!(kept.values_at("s.z").is_empty());
        assert_eq!(
            kept.setters_of("s"),
            [
                SourceName::Memory("a".into()),
                SourceName::Memory("b".into())
            ]
        );
        assert!(kept.setters_of("t").is_empty());
        assert_eq!(format!("{kept:?}"), r#"[Memory("a"), Memory("b")]"#);
    }
}
