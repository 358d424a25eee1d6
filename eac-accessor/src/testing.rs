//! Snapshot tests of a service's own configuration: stable, redacted renderings of a
//! snapshot and of errors, with temporary paths replaced, for `insta` or any other
//! snapshot library.
//!
//! A test that snapshots `snapshot.document()` would write secrets into the `.snap`
//! file, and one that snapshots an error would write the test's temp folder, different
//! on every run. [`Scrub`] renders both without either:
//!
//! ```
//! use eac_accessor::prelude::*;
//! use eac_accessor::testing::Scrub;
//!
//! #[derive(Debug, serde::Deserialize, schemars::JsonSchema, EaCSection)]
//! struct Upstream {
//!     url: String,
//!     api_key: Secret<String>,
//! }
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("app.toml"), "[upstream]\nurl = \"http://up\"\napi_key = \"k3y\"\n")?;
//! let config = EaCAccessor::builder().section::<Upstream>().source(Dir::new(dir.path())).build()?;
//! let scrub = Scrub::new().path(dir.path(), "[config]");
//!
//! let rendered = scrub.snapshot(&config.load());
//! assert_eq!(rendered["upstream"]["api_key"], "[redacted]");
//! // insta::assert_json_snapshot!(rendered);
//!
//! std::fs::write(dir.path().join("app.toml"), "[upstream]\nurl = 5\napi_key = \"k3y\"\n")?;
//! let errors = config.reload(Origin::Refresh).unwrap_err();
//! assert_eq!(
//!     scrub.errors(&errors),
//!     "`upstream.url` in file `[config]/app.toml`: expected string, found integer 5\n"
//! );
//! // insta::assert_snapshot!(scrub.errors(&errors));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use serde_json::Value;

use crate::error::Errors;
use crate::snapshot::Snapshot;

/// Renders snapshots and errors for snapshot tests: secrets redacted, given paths
/// replaced by placeholders.
#[derive(Debug, Clone, Default)]
pub struct Scrub {
    /// (text to find, placeholder), longest first so a folder inside another is
    /// replaced by its own placeholder.
    replace: Vec<(String, String)>,
}

impl Scrub {
    /// Replaces nothing yet; secrets are always redacted.
    pub fn new() -> Scrub {
        Scrub::default()
    }

    /// Replaces `path` (as given, and as the OS resolves it) with `placeholder`
    /// wherever it appears.
    pub fn path(mut self, path: impl AsRef<Path>, placeholder: &str) -> Scrub {
        let path = path.as_ref();
        let mut forms = vec![path.display().to_string()];
        if let Ok(real) = std::fs::canonicalize(path) {
            forms.push(real.display().to_string());
        }
        for form in forms {
            if !form.is_empty() && !self.replace.iter().any(|(f, _)| *f == form) {
                self.replace.push((form, placeholder.to_owned()));
            }
        }
        self.replace
            .sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        self
    }

    /// The snapshot's merged document with every secret `"[redacted]"` and the paths
    /// replaced in every string; version, hash and times left out, so that it changes
    /// only when the configuration does.
    pub fn snapshot(&self, snapshot: &Snapshot) -> Value {
        let mut document = snapshot.redacted_document();
        self.scrub_value(&mut document);
        document
    }

    /// One line per error (`Display`, which never holds a secret's value), paths
    /// replaced.
    pub fn errors(&self, errors: &Errors) -> String {
        errors
            .iter()
            .map(|e| format!("{}\n", self.text(&e.to_string())))
            .collect()
    }

    /// `text` with the paths replaced.
    pub fn text(&self, text: &str) -> String {
        self.replace
            .iter()
            .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
    }

    fn scrub_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.text(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.scrub_value(v)),
            _ => {}
        }
    }
}
