//! One key read: what it is (configuration, an instance's record, or neither), and the
//! document a configuration key's value contributes, in the layout of the options.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{INSTANCES, RELEASES, Shared};
use crate::error::{Error, ErrorKind, SourceName};
use crate::source::{Dict, Format};

/// One configuration key of the prefix, as read.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) mod_revision: i64,
    /// The value's text, for the cache (empty when it did not parse).
    pub(super) text: Arc<str>,
    /// A hash of the value as read: a key rewritten on another cluster may come back at
    /// the same revision with another value.
    pub(super) value_hash: u64,
    pub(crate) parsed: Result<(Dict, u64), Error>,
}

/// What a key under the prefix is.
pub(crate) enum Key<'k> {
    /// A configuration key, by its name after the prefix (`None`: not UTF-8).
    Config(Option<&'k str>),
    /// An instance's record, by its id.
    Instance(&'k str),
    /// A writer's record of a release, by its id.
    Release(&'k str),
    Ignored,
}

impl Shared {
    pub(crate) fn classify<'k>(&self, key: &'k [u8]) -> Key<'k> {
        let Some(rest) = key.strip_prefix(self.options.prefix.as_bytes()) else {
            return Key::Ignored;
        };
        if let Some(id) = rest.strip_prefix(INSTANCES.as_bytes()) {
            return std::str::from_utf8(id).map_or(Key::Ignored, Key::Instance);
        }
        if let Some(id) = rest.strip_prefix(RELEASES.as_bytes()) {
            return std::str::from_utf8(id).map_or(Key::Ignored, Key::Release);
        }
        if rest.starts_with(b".") || rest.is_empty() {
            return Key::Ignored;
        }
        let Ok(rest) = std::str::from_utf8(rest) else {
            return Key::Config(None);
        };
        match &self.options.document {
            Some(doc) if doc != rest => Key::Ignored,
            _ => Key::Config(Some(rest)),
        }
    }

    /// One configuration key; `value` is `None` when it was over the decode bound, and
    /// so never read.
    pub(crate) fn entry(
        &self,
        name: Option<&str>,
        key: &[u8],
        value: Option<&[u8]>,
        mod_revision: i64,
    ) -> Entry {
        let key = String::from_utf8_lossy(key).into_owned();
        let source = SourceName::Etcd {
            key: key.clone(),
            revision: Some(mod_revision),
        };
        let parsed = match (name, value) {
            (None, _) => {
                Err(Error::new(ErrorKind::Parse, "the key is not UTF-8").with_source(source))
            }
            (Some(_), None) => Err(self.options.max_value.exceeded(&source)),
            (Some(name), Some(value)) => self.parse(name, value, &source),
        };
        let text = match (&parsed, value) {
            (Ok(_), Some(value)) => Arc::from(String::from_utf8_lossy(value)),
            _ => Arc::from(""),
        };
        let value_hash = value.map_or(0, xxhash_rust::xxh3::xxh3_64);
        Entry {
            key,
            mod_revision,
            text,
            value_hash,
            parsed,
        }
    }

    /// Parses one value into the document it contributes.
    pub(crate) fn parse(
        &self,
        name: &str,
        value: &[u8],
        source: &SourceName,
    ) -> Result<(Dict, u64), Error> {
        let cap = self.options.max_value;
        if value.len() as u64 > cap.bytes() {
            return Err(cap.exceeded(source));
        }
        let text = std::str::from_utf8(value).map_err(|e| {
            Error::new(
                ErrorKind::Parse,
                format!("the value is not UTF-8 (byte {})", e.valid_up_to()),
            )
            .with_source(source.clone())
        })?;
        let (stem, format) = split_extension(name);
        let data = format
            .parse(text, &self.options.limits)
            .map_err(|(kind, message)| Error::new(kind, message).with_source(source.clone()))?;
        let data = if self.options.document.is_some() {
            data
        } else {
            let mut segments = stem.split('/').rev();
            if stem.split('/').any(str::is_empty) {
                return Err(Error::new(
                    ErrorKind::Parse,
                    "the key does not name a section: expected `<prefix>section` or `<prefix>a/b`",
                )
                .with_source(source.clone()));
            }
            let mut data = data;
            for segment in segments.by_ref() {
                let mut outer = Dict::new();
                outer.insert(segment.to_owned(), serde_json::Value::Object(data));
                data = outer;
            }
            data
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(value);
        Ok((data, h.digest()))
    }
}

/// For each configuration key that sets the same section as another key (`features`
/// and `features.yaml`: the names differ by a format's extension only), the error that
/// rejects it, naming the others. Which one would win is no choice eac makes silently.
pub(super) fn same_section(entries: &[Entry], prefix: &str) -> HashMap<String, Error> {
    let mut by_section: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in entries {
        if let Some(name) = entry.key.strip_prefix(prefix) {
            by_section
                .entry(split_extension(name).0)
                .or_default()
                .push(entry);
        }
    }
    let mut errors = HashMap::new();
    for (section, keys) in by_section.into_iter().filter(|(_, k)| k.len() > 1) {
        for entry in &keys {
            let others: Vec<String> = keys
                .iter()
                .filter(|o| o.key != entry.key)
                .map(|o| format!("`{}`", o.key))
                .collect();
            let source = SourceName::Etcd {
                key: entry.key.clone(),
                revision: Some(entry.mod_revision),
            };
            let error = Error::new(
                ErrorKind::Parse,
                format!(
                    "section `{section}` is set by this key and by {}: keep one key per section \
                     (delete the others)",
                    others.join(" and ")
                ),
            )
            .with_source(source);
            errors.insert(entry.key.clone(), error);
        }
    }
    errors
}

/// The section a key's name sets: its name without a format's extension.
pub(super) fn section_of(name: &str) -> &str {
    #[cfg(test)]
    SECTIONS_OF.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    split_extension(name).0
}

/// How many names [`section_of`] has looked at: the work of a read, counted, for tests.
#[cfg(test)]
pub(super) static SECTIONS_OF: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `limits.toml` → (`limits`, TOML); `limits` → (`limits`, JSON).
fn split_extension(name: &str) -> (&str, Format) {
    if let Some((stem, ext)) = name.rsplit_once('.')
        && !stem.is_empty()
        && !ext.contains('/')
    {
        let format = match ext.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        };
        if let Some(format) = format {
            return (stem, format);
        }
    }
    (name, Format::Json)
}

pub(crate) fn instance_record(value: &[u8]) -> serde_json::Value {
    serde_json::from_slice(value).unwrap_or_else(|_| unreadable())
}

/// A release's record as kept: its value with `"revision"`, the revision it released.
pub(crate) fn release_record(value: &[u8], mod_revision: i64) -> serde_json::Value {
    let mut record = instance_record(value);
    if let Some(map) = record.as_object_mut() {
        map.insert("revision".into(), mod_revision.into());
    }
    record
}

pub(super) fn unreadable() -> serde_json::Value {
    serde_json::json!({"unreadable": true})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_choose_the_format_and_leave_the_name() {
        assert_eq!(split_extension("limits"), ("limits", Format::Json));
        assert_eq!(split_extension("limits.toml"), ("limits", Format::Toml));
        assert_eq!(split_extension("a/b.yml"), ("a/b", Format::Yaml));
        assert_eq!(split_extension("v1.2"), ("v1.2", Format::Json));
    }

    #[test]
    fn keys_that_differ_by_a_format_extension_only_set_one_section() {
        let entry = |key: &str| Entry {
            key: key.to_owned(),
            mod_revision: 7,
            text: Arc::from(""),
            value_hash: 0,
            parsed: Ok((Dict::new(), 0)),
        };
        let entries = [
            "features",
            "features.yaml",
            "limits.toml",
            "a/b",
            "a/b.json",
            "v1.2",
        ]
        .map(|k| entry(&format!("/p/{k}")));
        let twins = same_section(&entries, "/p/");
        let mut keys: Vec<&str> = twins.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["/p/a/b", "/p/a/b.json", "/p/features", "/p/features.yaml"]
        );
        assert_eq!(
            twins["/p/features"].to_string(),
            "etcd:/p/features@7: section `features` is set by this key and by `/p/features.yaml`: \
             keep one key per section (delete the others)"
        );
    }
}
