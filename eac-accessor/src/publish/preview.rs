//! Dry runs: a candidate (the sources, or the sources with an overlay) through every
//! check, diffed against the current version, published nowhere.

use std::sync::Arc;

use serde_json::Value;

use super::isolate;
use super::scope::{Scoped, scope, scope_kept};
use super::{Publisher, next_version, prepare};
use crate::diff::{self, Diff};
use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::snapshot::{Origin, Snapshot};
use crate::source::provenance;
use crate::source::{self, Layer};
use crate::status::HeldBack;
use crate::sync::lock;

/// What to preview.
#[derive(Clone)]
#[non_exhaustive]
pub enum Candidate {
    /// What the sources say now.
    Sources,
    /// What the sources say now, with this document merged over them.
    Overlay(Value),
}

// Never the overlay's values: they may hold secrets.
impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Candidate::Sources => f.write_str("Sources"),
            Candidate::Overlay(_) => f.write_str("Overlay(..)"),
        }
    }
}

/// The result of a dry run: nothing was published and nobody was told.
///
/// An overlay that sets a secret is reported as a change of that key ("secret set"),
/// whatever the value, so that a preview never tells whether a guess equals the current
/// secret: `would_publish` is then true even when the value is the same (a reload would
/// find nothing new and publish nothing).
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct Preview {
    /// Whether a reload now would publish a new version.
    pub would_publish: bool,
    /// Whether the candidate is the same as the current version.
    pub unchanged: bool,
    /// The current version the diff is against.
    pub version: u64,
    /// Every problem that would reject the candidate.
    pub errors: Vec<Error>,
    /// The classified changes from the current version to the candidate.
    pub diff: Diff,
    /// The inputs left out of the candidate because they were rejected (see
    /// [`Status::held_back`](crate::Status::held_back)): the preview is of the rest of
    /// the change. Empty when every input is in it.
    pub held_back: Vec<HeldBack>,
}

impl Preview {
    fn rejected(version: u64, errors: Vec<Error>, diff: Diff) -> Preview {
        Preview {
            would_publish: false,
            unchanged: false,
            version,
            errors,
            diff,
            held_back: Vec::new(),
        }
    }
}

/// A key with a dot in an overlay is a mistake for a nested table (`{"upstream.api_key": ..}`
/// for `{"upstream": {"api_key": ..}}`); taken literally it would be a new top-level key.
pub(super) fn dotted_keys(overlay: &Value, source: &SourceName) -> Option<Vec<Error>> {
    fn walk(value: &Value, path: &str, source: &SourceName, out: &mut Vec<Error>) {
        let Value::Object(map) = value else { return };
        for (key, value) in map {
            let child = crate::error::join_key(path, key);
            if key.contains('.') {
                out.push(
                    Error::new(
                        ErrorKind::UnknownKey,
                        "a key with a dot is not a path here: nest it as a table \
                         (`{\"upstream\": {\"api_key\": ..}}`, not `{\"upstream.api_key\": ..}`)",
                    )
                    .with_key(child)
                    .with_source(source.clone()),
                );
            } else {
                walk(value, &child, source, out);
            }
        }
    }
    let mut errors = Vec::new();
    walk(overlay, "", source, &mut errors);
    (!errors.is_empty()).then_some(errors)
}

impl Publisher {
    /// Runs the pipeline on a candidate without storing it: would it publish, every
    /// error, and the classified diff against the current snapshot.
    ///
    /// A dry run of the sources holds back bad inputs as a reload would (see
    /// [`isolate`]): when it does, the preview is of the rest of the change, and
    /// [`Preview::held_back`] names what it left out.
    pub(crate) fn preview(&self, candidate: Candidate) -> Preview {
        // As a writer: reading the sources tells them what is read (and, below, what
        // was rejected), which must not fall between a reload's read and its commit.
        // Called back from a publish's callback on its own thread, it is within that
        // writer's run: it reads without holding back (nothing to tell the sources).
        let writer = self.write_unless_writing();
        let current = self.current.load_full();
        let from_sources = matches!(candidate, Candidate::Sources);
        // The keys where the overlay sets a secret: reported as set, never compared.
        let mut secrets_set = Vec::new();
        let layers = source::load_layers(&self.sources).and_then(|mut layers| {
            if let Candidate::Overlay(overlay) = candidate {
                let name = SourceName::Memory("preview overlay".to_owned());
                if let Some(errors) = dotted_keys(&overlay, &name) {
                    return Err(errors);
                }
                secrets_set = diff::secret_keys_set(&overlay, &self.secrets);
                layers.push(Layer::from_serialize(name, &overlay).map_err(|e| vec![e])?);
            }
            Ok(layers)
        });
        let layers = match layers {
            Ok(layers) => layers,
            Err(errors) => return Preview::rejected(current.version, errors, Diff::default()),
        };
        let kept = Arc::new(provenance::keep(&layers));
        let scoped = scope_kept(layers, Arc::clone(&kept), &self.keys, false);
        let preview = self.dry_run(scoped, &current, &secrets_set);
        let culprits = match Errors::from_vec(preview.errors.clone()) {
            Some(errors) if from_sources => isolate::culprits(&errors, &kept, &self.specs),
            _ => None,
        };
        let Some(culprits) = culprits else {
            return preview;
        };
        let Some(writer) = writer else {
            return preview;
        };
        self.sources.iter().for_each(|s| s.rejected(&culprits));
        if writer.is_none() {
            return preview;
        }
        let inputs: Vec<SourceName> = culprits.iter().map(|(input, _)| input.clone()).collect();
        let layers = kept.layers_holding_back(&current.kept, &inputs, isolate::input_of);
        let mut rest = self.dry_run(scope(layers, &self.keys, false), &current, &secrets_set);
        if !rest.would_publish {
            return preview;
        }
        rest.held_back = isolate::held_back(&culprits, &lock(&self.status).held_back);
        rest
    }

    /// [`preview`](Publisher::preview) of one scoped candidate.
    fn dry_run(
        &self,
        scoped: Result<Scoped, Vec<Error>>,
        current: &Arc<Snapshot>,
        secrets_set: &[Vec<String>],
    ) -> Preview {
        let scoped = match scoped {
            Ok(scoped) => scoped,
            Err(errors) => return Preview::rejected(current.version, errors, Diff::default()),
        };
        let hash = scoped.hash();
        // Equal hashes with a secret set would tell that the guess is right.
        if hash == current.hash && !scoped.is_rejected() && secrets_set.is_empty() {
            return Preview {
                would_publish: false,
                unchanged: true,
                version: current.version,
                errors: Vec::new(),
                diff: Diff::default(),
                held_back: Vec::new(),
            };
        }
        let document = scoped.document().clone();
        let result = next_version(current.version).and_then(|version| {
            prepare(
                &self.specs,
                &self.secrets,
                &self.keys,
                scoped,
                hash,
                version,
                Origin::Refresh,
            )
            .check(&self.resolvers, Some(current), &self.hooks)
            .map(drop)
        });
        let errors = result
            .err()
            .map(|e| e.as_slice().to_vec())
            .unwrap_or_default();
        let sections: Vec<&'static str> = self.specs.iter().map(|s| s.path).collect();
        let cx = diff::Context {
            secrets: &self.secrets,
            restarts: &self.restarts,
            sections: &sections,
            errors: &errors,
        };
        let mut diff = diff::diff(&current.document, &document, &cx);
        diff::secrets_set(&mut diff, secrets_set, &current.document, &document, &cx);
        if errors.is_empty() {
            Preview {
                would_publish: true,
                unchanged: false,
                version: current.version,
                errors,
                diff,
                held_back: Vec::new(),
            }
        } else {
            Preview::rejected(current.version, errors, diff)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_overlay_keys_are_found_at_any_depth_without_their_values() {
        let name = SourceName::Memory("overlay".into());
        assert!(dotted_keys(&json!({"upstream": {"api_key": "k"}}), &name).is_none());
        let errors = dotted_keys(&json!({"a.b": "v1", "c": {"d.e": "v2"}}), &name).unwrap();
        let keys: Vec<_> = errors.iter().filter_map(Error::key).collect();
        assert_eq!(keys, ["a.b", "c.d.e"]);
        let shown = format!("{errors:?}");
        assert!(!shown.contains("v1") && !shown.contains("v2"), "{shown}");
    }
}
