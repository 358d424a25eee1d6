//! From a scoped candidate to the snapshot it would be: schema → deserialize →
//! validate, then the resolvers and the readiness hooks; and the version number it takes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::scope::{Scoped, into_errors};
use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::hash::ContentHash;
use crate::keys::Keys;
use crate::resolve::{self, Resolve};
use crate::section::SectionSpec;
use crate::snapshot::{Origin, Snapshot};

/// A readiness hook: sees the fully built candidate and may refuse it with a reason.
pub(crate) type Hook = dyn Fn(&Snapshot) -> Result<(), String> + Send + Sync;

/// The version after `current`; past `u64::MAX` nothing more can be published.
pub(crate) fn next_version(current: u64) -> Result<u64, Errors> {
    current.checked_add(1).ok_or_else(|| {
        Error::new(
            ErrorKind::Limit,
            format!(
                "no version number is left after {current}: nothing more can be published \
                 (start on a fresh durable history)"
            ),
        )
        .into()
    })
}

/// A candidate built as far as its sections go: the snapshot holding every section that
/// built, and every error of the others. [`check`](Prepared::check) finishes it.
pub(crate) struct Prepared {
    snapshot: Snapshot,
    errors: Vec<Error>,
    /// Some inputs did not parse and were left out (see [`Scoped`]).
    partial: bool,
}

impl Prepared {
    /// Runs the resolvers (reusing `previous`'s values where their sections did not
    /// change), then the readiness hooks: the snapshot, or every error of every section
    /// and resolver at once.
    ///
    /// On a candidate whose sections did not all build, each resolver whose sections all
    /// did still runs, so that its errors are reported with theirs; the hooks, which see
    /// the whole configuration, run only on a complete one. With inputs left out for not
    /// parsing, no resolver runs: what they would have set is missing, as for a
    /// section's own `validate`.
    pub(crate) fn check(
        self,
        resolvers: &[Box<dyn Resolve>],
        previous: Option<&Snapshot>,
        hooks: &[(String, Box<Hook>)],
    ) -> Result<Snapshot, Errors> {
        let Prepared {
            mut snapshot,
            mut errors,
            partial,
        } = self;
        if !partial && let Err(found) = resolve::resolve_all(resolvers, previous, &mut snapshot) {
            errors.extend(found);
        }
        if !errors.is_empty() {
            return Err(into_errors(errors));
        }
        check_hooks(hooks, &snapshot)?;
        Ok(snapshot)
    }
}

/// Validates every section of a scoped candidate and builds the snapshot it would be, of
/// the sections that built.
///
/// Reports every problem of every section; errors about a key name the source that set
/// it, and a missing key names the sources that set its section.
pub(crate) fn prepare(
    specs: &[SectionSpec],
    secrets: &Arc<[String]>,
    keys: &Arc<Keys>,
    candidate: Scoped,
    hash: ContentHash,
    version: u64,
    origin: Origin,
) -> Prepared {
    let Scoped {
        merged,
        hash: _,
        kept,
        unknown: mut errors,
        partial,
    } = candidate;
    let empty = Value::Object(serde_json::Map::new());
    let mut sections = Vec::with_capacity(specs.len());
    let mut provenance = None;
    for spec in specs {
        let value = merged.document.pointer(&spec.pointer);
        match spec.build(value.unwrap_or(&empty)) {
            Ok(section) => sections.push((spec.type_id, spec.path, section)),
            Err(found)
                if value.is_none() && found.iter().all(|e| e.kind() == ErrorKind::MissingKey) =>
            {
                errors.push(absent_section(spec, &found));
            }
            Err(found) => {
                let setters = kept.setters_of(spec.path);
                let provenance = provenance.get_or_insert_with(|| kept.provenance());
                errors.extend(found.into_iter().map(|e| match (e.kind(), e.key()) {
                    (ErrorKind::MissingKey, Some(key)) => missing_key(spec, key, &setters),
                    _ if e.source.is_some() => e,
                    (_, key) => match key.and_then(|k| provenance.source_of(k)) {
                        Some(source) => e.with_source(source),
                        None => e,
                    },
                }));
            }
        }
    }
    if partial {
        // Inputs that did not parse were left out: what they would have set is missing
        // and a section's own check may fail for it. Only the other inputs' own errors
        // are theirs.
        errors.retain(|e| !matches!(e.kind(), ErrorKind::MissingKey | ErrorKind::Validation));
    }
    let snapshot = Snapshot {
        version,
        hash,
        published_at: SystemTime::now(),
        origin,
        document: Arc::new(merged.document),
        sections: sections.into_boxed_slice(),
        secrets: Arc::clone(secrets),
        kept,
        keys: Arc::clone(keys),
        resolved: Box::default(),
    };
    Prepared {
        snapshot,
        errors,
        partial,
    }
}

/// "`upstream.api_key`: missing (required by section `upstream`, set by file `app.toml`)":
/// a missing key is blamed on the sources of its section, never on a sibling's variable.
fn missing_key(spec: &SectionSpec, key: &str, setters: &[SourceName]) -> Error {
    let error = Error::new(
        ErrorKind::MissingKey,
        format!(
            "missing (required by section `{}`, set by {})",
            spec.path,
            list(setters.iter().map(ToString::to_string).collect())
        ),
    )
    .with_key(key);
    // The file where the section is written, rather than an overlay that set a sibling.
    let source = setters
        .iter()
        .rev()
        .find(|s| !matches!(s, SourceName::Env(_)))
        .or(setters.last());
    match source {
        Some(source) => error.with_source(source.clone()),
        None => error,
    }
}

/// One error for a required section that no source sets, instead of one per key.
fn absent_section(spec: &SectionSpec, missing: &[Error]) -> Error {
    let fields = missing
        .iter()
        .filter_map(|e| e.key())
        .map(|k| {
            let field = k.strip_prefix(spec.path).and_then(|r| r.strip_prefix('.'));
            format!("`{}`", field.unwrap_or(k))
        })
        .collect();
    Error::new(
        ErrorKind::MissingKey,
        format!(
            "missing (no source sets section `{}`, which requires {})",
            spec.path,
            list(fields)
        ),
    )
    .with_key(spec.path)
}

/// `a`, `a and b`, `a, b and c`.
fn list(mut items: Vec<String>) -> String {
    match items.len() {
        0 => "no source".to_owned(),
        1 => items.remove(0),
        _ => {
            let last = items.pop().unwrap_or_default();
            format!("{} and {last}", items.join(", "))
        }
    }
}

/// Runs the readiness hooks in order; every refusal is reported.
fn check_hooks(hooks: &[(String, Box<Hook>)], candidate: &Snapshot) -> Result<(), Errors> {
    let errors: Vec<Error> = hooks
        .iter()
        .filter_map(|(name, hook)| {
            let verdict = catch_unwind(AssertUnwindSafe(|| hook(candidate)))
                .unwrap_or_else(|_| Err("the hook panicked".to_owned()));
            verdict.err().map(|why| {
                Error::new(
                    ErrorKind::Veto,
                    format!("readiness hook `{name}` refused: {why}"),
                )
            })
        })
        .collect();
    Errors::from_vec(errors).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {

    #[test]
    fn lists_read_as_prose() {
        let list = |items: &[&str]| super::list(items.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(list(&[]), "no source");
        assert_eq!(list(&["a"]), "a");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
    }
}
