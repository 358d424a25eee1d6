//! `[access] rules`, compiled by a resolver into one matcher per change, and the
//! `GET /rules?path=/x` route that asks it.

use axum::Json;
use axum::extract::Query;
use eac_accessor::resolve::{ResolveError, Resolver};
use eac_tower::Resolved;
use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::RegexSet;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::sections::Access;

/// The compiled `[access] rules`: globs in one set, regexes in another.
#[derive(Debug)]
pub(crate) struct Rules {
    /// `None`: no rules, every path allowed.
    compiled: Option<(GlobSet, RegexSet)>,
}

impl Rules {
    /// How many patterns it holds.
    fn count(&self) -> usize {
        self.compiled.as_ref().map_or(0, |(g, r)| g.len() + r.len())
    }

    /// Whether `path` matches a rule.
    fn allows(&self, path: &str) -> bool {
        match &self.compiled {
            None => true,
            Some((globs, regexes)) => globs.is_match(path) || regexes.is_match(path),
        }
    }
}

/// The resolver: each pattern that does not compile rejects the candidate, naming its key.
/// A replaced matcher is dropped once no request holds it and `EAC_REFRESH_DRAIN_MS`
/// has passed, and says so in the log.
pub(crate) fn resolver() -> Resolver<Rules> {
    Resolver::new("access rules", compile).on_drain(|rules: Rules| async move {
        tracing::debug!(rules = rules.count(), "replaced access rules drained");
    })
}

fn compile(access: &Access) -> Result<Rules, ResolveError> {
    let Some(rules) = &access.rules else {
        return Ok(Rules { compiled: None });
    };
    let mut globs = GlobSetBuilder::new();
    let mut regexes = Vec::new();
    // Every bad pattern at once, not the first only.
    let mut bad = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = |e: &dyn std::fmt::Display| {
            ResolveError::new(format!("pattern `{rule}` does not compile: {e}"))
                .at_key(format!("access.rules.{i}"))
        };
        if rule.starts_with('^') {
            // Checked one by one so that the error names the pattern at fault.
            match regex::Regex::new(rule) {
                Ok(_) => regexes.push(rule.as_str()),
                Err(e) => bad.push(at(&e)),
            }
        } else {
            match Glob::new(rule) {
                Ok(glob) => {
                    globs.add(glob);
                }
                Err(e) => bad.push(at(&e)),
            }
        }
    }
    if let Some(bad) = ResolveError::from_vec(bad) {
        return Err(bad);
    }
    let globs = globs.build()?;
    let regexes = RegexSet::new(regexes)?;
    Ok(Rules {
        compiled: Some((globs, regexes)),
    })
}

#[derive(Deserialize)]
pub(crate) struct PathQuery {
    path: String,
}

/// `GET /rules?path=/x` → `{"allowed": bool, "version": N, "built_at_version": M}`:
/// the rules of the pinned version, compiled by version M.
pub(crate) async fn route(rules: Resolved<Rules>, Query(query): Query<PathQuery>) -> Json<Value> {
    Json(json!({
        "allowed": rules.allows(&query.path),
        "version": rules.snapshot().version(),
        "built_at_version": rules.built_at(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(rules: &[&str]) -> Result<Rules, ResolveError> {
        compile(&Access {
            rules: Some(rules.iter().map(|r| (*r).to_owned()).collect()),
        })
    }

    #[test]
    fn globs_and_regexes_allow_what_they_match_and_nothing_else() {
        let r = rules(&["/api/**", "^/v[0-9]+/"]).unwrap();
        assert!(r.allows("/api/users/1"));
        assert!(r.allows("/v2/x"));
        assert!(!r.allows("/admin"));
        assert!(!r.allows("/vx/"));
        assert!(!rules(&[]).unwrap().allows("/"));
        assert!(compile(&Access::default()).unwrap().allows("/anything"));
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_named_by_its_key() {
        let e = rules(&["/ok", "/a/{b"]).unwrap_err();
        assert_eq!(e.key(), Some("access.rules.1"));
        assert!(
            e.message().starts_with("pattern `/a/{b` does not compile"),
            "{}",
            e.message()
        );
        let e = rules(&["^(unclosed"]).unwrap_err();
        assert_eq!(e.key(), Some("access.rules.0"));
    }

    #[test]
    fn every_pattern_that_does_not_compile_is_named() {
        let e = rules(&["/a/{b", "/ok", "^(unclosed"]).unwrap_err();
        let keys: Vec<_> = e.iter().map(ResolveError::key).collect();
        assert_eq!(keys, [Some("access.rules.0"), Some("access.rules.2")]);
    }
}
