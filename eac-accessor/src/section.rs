//! Typed configuration sections.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, ErrorKind, dotted_to_pointer, join_key};
use crate::keys::SectionKeys;
use crate::validate;

/// A typed slice of the configuration, found at a dotted path in the merged document.
///
/// The schema comes from [`schemars`]; deserialization from [`serde`]. A hand-written
/// implementation is one line; `#[derive(EaCSection)]` also gives lenses and secrets.
///
/// ```
/// use eac_accessor::{EaCSection, FieldErrors};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize, JsonSchema)]
/// struct Limits {
///     #[schemars(range(min = 1, max = 16_777_216))]
///     max_body_bytes: u64,
///     #[schemars(range(min = 1, max = 60_000))]
///     request_timeout_ms: u64,
/// }
///
/// impl EaCSection for Limits {
///     const PATH: &'static str = "limits";
///
///     // Optional: checks the schema cannot express.
///     fn validate(&self) -> Result<(), FieldErrors> {
///         let mut errors = FieldErrors::new();
///         if self.request_timeout_ms > 10_000 && self.max_body_bytes < 1024 {
///             errors.add("request_timeout_ms", "a long timeout needs max_body_bytes >= 1024");
///         }
///         errors.into_result()
///     }
/// }
/// ```
pub trait EaCSection: DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The dotted key of this section in the merged document (`"limits"`, `"server.http"`).
    const PATH: &'static str;

    /// Whether keys inside the section that no field owns are ignored rather than
    /// rejected; default `false`. `#[eac(allow_unknown_keys)]` sets it from the derive.
    ///
    /// Either way an unknown key is removed before the candidate is hashed, so its value
    /// is never stored, diffed or shown; by default it also rejects the candidate, with
    /// an error naming the key, its source and the nearest field.
    const ALLOW_UNKNOWN_KEYS: bool = false;

    /// Dotted paths of secret fields, relative to the section (`["api_key"]`); a
    /// segment `*` stands for any element of a list or key of a map (`"keys.*"`,
    /// `"routes.*.token"`).
    ///
    /// Their values never appear in errors, logs, diffs or `Debug` output of eac's types.
    fn secret_paths() -> Vec<String> {
        Vec::new()
    }

    /// Dotted paths of the fields read only at start (`#[eac(restart)]`), relative to the
    /// section: a change there is published like any other, classified
    /// [`Class::Restart`](crate::Class::Restart) in diffs, and listed in
    /// [`Status::restart_needed`](crate::Status::restart_needed) until the process restarts.
    fn restart_paths() -> Vec<String> {
        Vec::new()
    }

    /// The JSON Schema every candidate value of the section must satisfy.
    fn schema() -> Value {
        schemars::schema_for!(Self).to_value()
    }

    /// Checks the schema cannot express; report every failure, keyed by field path.
    fn validate(&self) -> Result<(), FieldErrors> {
        Ok(())
    }

    /// Where this type's section was last found in a snapshot's list, so that
    /// [`Snapshot::get`](crate::Snapshot::get) checks one entry instead of scanning.
    ///
    /// A hint, never trusted: the entry's type is checked, and a miss scans and updates
    /// it. `#[derive(EaCSection)]` gives each non-generic type its own; the default (no
    /// hint) always scans.
    #[doc(hidden)]
    #[inline]
    fn __slot() -> Option<&'static AtomicUsize> {
        None
    }
}

/// The failures found by [`EaCSection::validate`], each for a field path in the section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// No failures yet.
    pub fn new() -> Self {
        FieldErrors::default()
    }

    /// Records that `field` (dotted, relative to the section; `""` for the section as a
    /// whole) fails with `message`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) -> &mut Self {
        self.0.push((field.into(), message.into()));
        self
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else `Err(self)`.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The recorded `(field, message)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, m)| (f.as_str(), m.as_str()))
    }
}

pub(crate) type AnySection = Arc<dyn Any + Send + Sync>;

/// A registered section with its schema compiled once, at build.
pub(crate) struct SectionSpec {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
    pub(crate) path: &'static str,
    pub(crate) pointer: String,
    pub(crate) validator: validate::SchemaValidator,
    /// The schema and the unknown-key rule, for the key walk.
    pub(crate) keys: SectionKeys,
    /// Absolute dotted paths of secret fields.
    pub(crate) secrets: Vec<String>,
    /// Absolute dotted paths of the fields read only at start.
    pub(crate) restarts: Vec<String>,
    build: fn(&SectionSpec, &Value) -> Result<AnySection, Vec<Error>>,
}

impl fmt::Debug for SectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SectionSpec")
            .field("type", &self.type_name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SectionSpec {
    pub(crate) fn of<T: EaCSection>() -> Result<SectionSpec, Error> {
        let schema = T::schema();
        let validator = validate::SchemaValidator::new(&schema).map_err(|why| {
            Error::new(
                ErrorKind::Schema,
                format!(
                    "the JSON Schema of section `{}` cannot be checked: {why}",
                    std::any::type_name::<T>(),
                ),
            )
            .with_key(T::PATH)
        })?;
        let secrets = T::secret_paths()
            .into_iter()
            .map(|p| join_key(T::PATH, &p))
            .collect();
        let restarts = T::restart_paths()
            .into_iter()
            .map(|p| join_key(T::PATH, &p))
            .collect();
        Ok(SectionSpec {
            restarts,
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            path: T::PATH,
            pointer: dotted_to_pointer(T::PATH),
            validator,
            keys: SectionKeys {
                path: T::PATH,
                schema,
                allow_unknown: T::ALLOW_UNKNOWN_KEYS,
            },
            secrets,
            build: build_section::<T>,
        })
    }

    /// Schema-validates, deserializes and custom-validates the section.
    pub(crate) fn build(&self, value: &Value) -> Result<AnySection, Vec<Error>> {
        (self.build)(self, value)
    }
}

fn build_section<T: EaCSection>(
    spec: &SectionSpec,
    value: &Value,
) -> Result<AnySection, Vec<Error>> {
    let errors = validate::schema_errors(spec.path, &spec.validator, &spec.secrets, value);
    if !errors.is_empty() {
        return Err(errors);
    }
    // Tracking the path costs on every value, and is only needed for an error: deserialize
    // plainly, and again with the path when that fails (the two fail alike).
    let section = match T::deserialize(value) {
        Ok(section) => section,
        Err(_) => match serde_path_to_error::deserialize::<_, T>(value) {
            Err(e) => {
                return Err(vec![validate::deserialize_error(
                    spec.path,
                    &spec.secrets,
                    &e,
                )]);
            }
            Ok(section) => section,
        },
    };
    if let Err(field_errors) = section.validate() {
        return Err(field_errors
            .iter()
            .map(|(field, message)| {
                Error::new(ErrorKind::Validation, message).with_key(join_key(spec.path, field))
            })
            .collect());
    }
    Ok(Arc::new(section))
}
