//! Sources held in memory: code defaults and replaceable documents.

use std::sync::{Arc, RwLock};

use super::{Format, Layer, ParseLimits, Source};
use crate::error::{Error, SourceName};
use crate::sync::{read, write};

/// Defaults given in code, serialized once; put them first so every other source wins.
///
/// ```
/// use eac_accessor::source::Defaults;
/// use serde_json::json;
///
/// let defaults = Defaults::new(&json!({ "limits": { "request_timeout_ms": 5000 } }));
/// # let _ = defaults;
/// ```
#[derive(Clone)]
pub struct Defaults {
    layer: Result<(super::Dict, u64), Error>,
}

impl Defaults {
    /// Serializes `value`, whose top level must be a map; a value that is not one makes
    /// every load fail with a clear error.
    pub fn new<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        Defaults {
            layer: super::serialize_dict(&SourceName::Defaults, value).map(|data| {
                let fingerprint = super::dict_fingerprint(&data);
                (data, fingerprint)
            }),
        }
    }
}

impl Source for Defaults {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        match &self.layer {
            Ok((data, fingerprint)) => Ok(vec![Layer::parsed(
                SourceName::Defaults,
                data.clone(),
                *fingerprint,
            )]),
            Err(e) => Err(vec![e.clone()]),
        }
    }
}

/// A named document in memory whose text can be replaced; clones share the text.
///
/// Useful in tests, and for sources that fetch a body elsewhere and keep it.
///
/// ```
/// use eac_accessor::source::{Format, Memory};
///
/// let doc = Memory::new("inline", Format::Toml, "[greeting]\nmessage = \"hi\"\n");
/// doc.set("[greeting]\nmessage = \"hello\"\n");
/// # let _ = doc;
/// ```
#[derive(Clone)]
pub struct Memory {
    name: String,
    format: Format,
    text: Arc<RwLock<Arc<str>>>,
    limits: ParseLimits,
}

impl Memory {
    /// A document named `name` (used in errors) holding `text` in `format`.
    pub fn new(name: impl Into<String>, format: Format, text: impl Into<Arc<str>>) -> Self {
        Memory {
            name: name.into(),
            format,
            text: Arc::new(RwLock::new(text.into())),
            limits: ParseLimits::default(),
        }
    }

    /// Sets the budgets the document is parsed within (default [`ParseLimits::default`]).
    pub fn limits(mut self, limits: ParseLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the text; the next reload reads it.
    pub fn set(&self, text: impl Into<Arc<str>>) {
        *write(&self.text) = text.into();
    }
}

impl Source for Memory {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        let text = Arc::clone(&read(&self.text));
        let name = SourceName::Memory(self.name.clone());
        Ok(vec![
            Layer::text(name, self.format, text).with_limits(self.limits),
        ])
    }
}

// Never the values: they may hold secrets.
impl std::fmt::Debug for Defaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Defaults").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("name", &self.name)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}
