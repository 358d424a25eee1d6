//! A bad input blocks only itself.
//!
//! When a candidate read from the sources is rejected and every error is pinned on one
//! input — a file, a remote document, an etcd key — the candidate is built again with
//! each such input's last accepted content in its place (the layers the current snapshot
//! was built from), and published if that passes. The inputs held back stay visible as
//! rejected until they change; every later reload reads them again, so they are retried
//! whenever they do. An error that cannot be pinned on one input (a section's own
//! `validate` over keys from two sources, a readiness hook, a resolver) rejects the
//! candidate whole, as does a rejection when the current version was not read from the
//! sources (a rollback, a start on the last good version): there is no accepted content
//! to put in the input's place.

use std::time::SystemTime;

use crate::error::{Error, ErrorKind, Errors, SourceName};
use crate::section::SectionSpec;
use crate::source::provenance::Kept;
use crate::status::HeldBack;

/// The input a layer is read from, as far as holding back goes: a file, a remote
/// document, an etcd key (at any revision) or a named in-memory document. `None` for
/// what does not change by itself at run time (the environment, defaults in code) or is
/// not one input (a folder as a whole).
pub(crate) fn input_of(name: &SourceName) -> Option<SourceName> {
    match name {
        SourceName::File(_) | SourceName::Url(_) | SourceName::Memory(_) => Some(name.clone()),
        SourceName::Etcd { key, .. } => Some(SourceName::Etcd {
            key: key.clone(),
            revision: None,
        }),
        SourceName::Dir(_) | SourceName::EnvVar(_) | SourceName::Env(_) | SourceName::Defaults => {
            None
        }
    }
}

/// The inputs `errors` are pinned on, each with its errors, in the order first named;
/// `None` when any error is not pinned on exactly one input.
///
/// An error about a value (syntax, size, schema, an unknown key, a type) is pinned on
/// the source it names. An error about a section as a whole (its own `validate`, a
/// missing key) is pinned on the one input that sets the section, when only one does
/// besides the defaults in code; otherwise it spans several inputs.
pub(super) fn culprits(
    errors: &Errors,
    candidate: &Kept,
    specs: &[SectionSpec],
) -> Option<Vec<(SourceName, Errors)>> {
    // When inputs could not be read, the rest was checked without them, and what they
    // would have set may make another input's value look wrong: hold back only those,
    // and let the candidate built without them decide the rest.
    let unreadable = |e: &&Error| e.kind().is_unreadable();
    let pinned: Vec<&Error> = if errors.iter().any(|e| unreadable(&e)) {
        errors.iter().filter(unreadable).collect()
    } else {
        errors.iter().collect()
    };
    let mut found: Vec<(SourceName, Vec<Error>)> = Vec::new();
    for error in pinned {
        let input = match error.kind() {
            ErrorKind::Parse
            | ErrorKind::Limit
            | ErrorKind::Io
            | ErrorKind::Schema
            | ErrorKind::UnknownKey
            | ErrorKind::Deserialize => input_of(error.source()?)?,
            ErrorKind::Validation | ErrorKind::MissingKey => {
                section_input(error.key()?, candidate, specs)?
            }
            _ => return None,
        };
        match found.iter_mut().find(|(known, _)| *known == input) {
            Some((_, list)) => list.push(error.clone()),
            None => found.push((input, vec![error.clone()])),
        }
    }
    found
        .into_iter()
        .map(|(input, list)| Some((input, Errors::from_vec(list)?)))
        .collect()
}

/// The one input that sets the section holding `key`, besides the defaults in code.
fn section_input(key: &str, candidate: &Kept, specs: &[SectionSpec]) -> Option<SourceName> {
    let spec = specs
        .iter()
        .filter(|s| key == s.path || key.starts_with(&format!("{}.", s.path)))
        .max_by_key(|s| s.path.len())?;
    let mut inputs = candidate
        .setters_of(spec.path)
        .into_iter()
        .filter(|s| *s != SourceName::Defaults)
        .map(|s| input_of(&s));
    let first = inputs.next()??;
    inputs
        .all(|other| other.as_ref() == Some(&first))
        .then_some(first)
}

/// The status entries for the inputs held back now: an input held back before keeps the
/// time it was first held back, whatever content it has had since.
pub(super) fn held_back(now: &[(SourceName, Errors)], before: &[HeldBack]) -> Vec<HeldBack> {
    now.iter()
        .map(|(input, errors)| {
            let shown = input.to_string();
            let since = before
                .iter()
                .find(|h| h.input == shown)
                .map_or_else(SystemTime::now, |h| h.since);
            HeldBack {
                input: shown,
                since,
                errors: errors.as_slice().to_vec(),
            }
        })
        .collect()
}
