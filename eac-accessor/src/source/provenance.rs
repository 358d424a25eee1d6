//! Which source set what, from every layer's input kept with the snapshot it became:
//! the sources that set a section (for a missing key's error), the source whose value
//! won at a key (for a rejection's error), and the sources of one value (for
//! `Snapshot::source_of`).

use std::cell::OnceCell;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::{Content, Dict, EnvVarNames, Format, Layer, ParseLimits};
use crate::error::{Error, SourceName};

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
    Failed(Error),
    Text(Format, Arc<str>, ParseLimits),
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
                    Content::Failed(error) => KeptContent::Failed(error.clone()),
                    Content::Text {
                        format,
                        text,
                        limits,
                    } => KeptContent::Text(*format, Arc::clone(text), *limits),
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
                let value = layer.with_value_at(key, Value::clone)?;
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

    /// The layers again, in merge order, but for those named in `left_out`.
    pub(crate) fn layers_without(&self, left_out: &[&SourceName]) -> Vec<Layer> {
        self.0
            .iter()
            .filter(|layer| !left_out.contains(&&layer.name))
            .map(KeptLayer::to_layer)
            .collect()
    }

    /// The layers again, in merge order, except that every layer whose input `input_of`
    /// finds in `held` is replaced by the layers of that input in `accepted` (none when
    /// `accepted` has none), at the place of its first layer here.
    pub(crate) fn layers_holding_back(
        &self,
        accepted: &Kept,
        held: &[SourceName],
        input_of: impl Fn(&SourceName) -> Option<SourceName>,
    ) -> Vec<Layer> {
        let is_held = |name: &SourceName| input_of(name).filter(|input| held.contains(input));
        let mut layers = Vec::with_capacity(self.0.len());
        let mut placed: Vec<SourceName> = Vec::new();
        for layer in &self.0 {
            let Some(input) = is_held(&layer.name) else {
                layers.push(layer.to_layer());
                continue;
            };
            if placed.contains(&input) {
                continue;
            }
            layers.extend(
                accepted
                    .0
                    .iter()
                    .filter(|old| is_held(&old.name).as_ref() == Some(&input))
                    .map(KeptLayer::to_layer),
            );
            placed.push(input);
        }
        layers
    }

    /// Answers "which source set this key?" about the merge of these layers.
    pub(crate) fn provenance(&self) -> Provenance<'_> {
        Provenance {
            kept: self,
            parsed: self.0.iter().map(|_| OnceCell::new()).collect(),
        }
    }
}

impl KeptLayer {
    /// The layer this was kept from, as it was read.
    fn to_layer(&self) -> Layer {
        let mut layer = match &self.content {
            KeptContent::Parsed(data) => Layer::parsed(
                self.name.clone(),
                data.clone(),
                super::dict_fingerprint(data),
            ),
            KeptContent::Text(format, text, limits) => {
                Layer::text(self.name.clone(), *format, Arc::clone(text)).with_limits(*limits)
            }
            KeptContent::Failed(error) => Layer::failed(self.name.clone(), error.clone()),
        };
        layer.env_vars = self.env_vars.clone();
        layer
    }

    /// `f` of the value at dotted `key`, if this layer has one. A text that no longer
    /// parses (it parsed when the snapshot was made, so this does not happen) has none.
    fn with_value_at<R>(&self, key: &str, f: impl FnOnce(&Value) -> R) -> Option<R> {
        let parsed;
        let data = match &self.content {
            KeptContent::Parsed(data) => data,
            KeptContent::Text(format, text, limits) => {
                parsed = format.parse(text, limits).ok()?;
                &parsed
            }
            KeptContent::Failed(_) => return None,
        };
        find_in(data, key).map(f)
    }
}

/// Which source set what in a merged document, for a rejection's errors: each kept
/// layer is parsed again at most once, and only when a question needs it.
pub(crate) struct Provenance<'a> {
    kept: &'a Kept,
    parsed: Vec<OnceCell<Option<Dict>>>,
}

impl Provenance<'_> {
    /// The source of the value at dotted `key`, or of its nearest present ancestor, in
    /// the merge of the layers (the key may since have been scoped out of the document,
    /// as an unknown key is). When no source holds the key or any parent of it (a
    /// section missing from an emptied file), the last file read is named: where the key
    /// was looked for last.
    pub(crate) fn source_of(&self, key: &str) -> Option<SourceName> {
        self.holder_of(key).or_else(|| {
            self.kept
                .0
                .iter()
                .rev()
                .find(|layer| matches!(layer.name, SourceName::File(_)))
                .map(|layer| layer.name.clone())
        })
    }

    /// Replays the merge along `key`'s path only: at each depth, which layer's value is
    /// there. A map merges into a map (the later layer is then the holder, as figment
    /// tagged it); anything else replaces the value and everything below it, so a layer
    /// that put an array or a scalar above the key decides what is under it.
    fn holder_of(&self, key: &str) -> Option<SourceName> {
        let segments: Vec<&str> = key.split('.').collect();
        // Per depth: the layer whose value is there in the merge, and whether it is a map.
        let mut held: Vec<Option<(usize, bool)>> = vec![None; segments.len()];
        for index in 0..self.kept.0.len() {
            let Some(data) = self.layer(index) else {
                continue;
            };
            let mut value = data.get(segments[0]);
            let mut depth = 0;
            while let Some(v) = value {
                let merges = v.is_object() && held[depth].is_some_and(|(_, map)| map);
                held[depth] = Some((index, v.is_object()));
                if !merges {
                    // Replaced: below this depth, only this layer's value counts.
                    let mut below = Some(v);
                    for (slot, segment) in held.iter_mut().zip(&segments).skip(depth + 1) {
                        below = below.and_then(|b| child(b, segment));
                        *slot = below.map(|b| (index, b.is_object()));
                    }
                    break;
                }
                depth += 1;
                value = segments.get(depth).and_then(|segment| child(v, segment));
            }
        }
        let depth = held.iter().rposition(Option::is_some)?;
        let (index, _) = held[depth]?;
        let layer = &self.kept.0[index];
        if let Some(vars) = &layer.env_vars {
            // The exact variable, or the first one that set something under this key.
            let probe = segments[..=depth].join(".");
            let var = vars.get(&probe).or_else(|| {
                let prefix = format!("{probe}.");
                vars.iter()
                    .find(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, v)| v)
            });
            if let Some(var) = var {
                return Some(SourceName::EnvVar(var.clone()));
            }
        }
        Some(layer.name.clone())
    }

    fn layer(&self, index: usize) -> Option<&Dict> {
        match &self.kept.0[index].content {
            KeptContent::Parsed(data) => Some(data),
            KeptContent::Text(format, text, limits) => self.parsed[index]
                .get_or_init(|| format.parse(text, limits).ok())
                .as_ref(),
            KeptContent::Failed(_) => None,
        }
    }
}

/// The value at dotted `key` in a document's top level.
fn find_in<'d>(data: &'d Dict, key: &str) -> Option<&'d Value> {
    let (first, rest) = match key.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (key, None),
    };
    let value = data.get(first)?;
    match rest {
        Some(rest) => find(value, rest),
        None => Some(value),
    }
}

/// The value at dotted `key` under `value` (a number indexes an array).
fn find<'d>(mut value: &'d Value, key: &str) -> Option<&'d Value> {
    for segment in key.split('.') {
        value = child(value, segment)?;
    }
    Some(value)
}

/// The value at one segment under `value`: a map's key, or an array's index.
fn child<'d>(value: &'d Value, segment: &str) -> Option<&'d Value> {
    match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::layer;
    use super::super::{Format, merge};
    use super::*;

    #[test]
    fn kept_layers_answer_every_value_at_a_key_in_order() {
        let a = layer("a", Format::Toml, "[s]\nx = 1\ny = 2\n");
        let b = layer("b", Format::Json, r#"{"s": {"y": 3}}"#);
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
