//! What can go wrong with a candidate configuration, and where.

use std::fmt;
use std::path::PathBuf;

/// Where a value (or a failure) came from: a file, an environment variable, defaults, …
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceName {
    /// A file on disk.
    File(PathBuf),
    /// A directory of configuration files.
    Dir(PathBuf),
    /// One environment variable, by name.
    EnvVar(String),
    /// The environment overlay as a whole, by prefix (`APP_`).
    Env(String),
    /// Serialized defaults given in code.
    Defaults,
    /// A named in-memory document (tests, remote sources that cache a body, …).
    Memory(String),
    /// A document fetched from a URL.
    Url(String),
    /// A key of an etcd cluster (`/eac/app/limits`), at the revision that last changed
    /// it; shown as `etcd:/eac/app/limits@42`.
    Etcd {
        /// The whole key, prefix included.
        key: String,
        /// The key's `mod_revision`, when known.
        revision: Option<i64>,
    },
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceName::File(p) => write!(f, "file `{}`", p.display()),
            SourceName::Dir(p) => write!(f, "directory `{}`", p.display()),
            SourceName::EnvVar(v) => write!(f, "env var `{v}`"),
            SourceName::Env(prefix) => write!(f, "env vars `{prefix}*`"),
            SourceName::Defaults => f.write_str("defaults"),
            SourceName::Memory(name) => write!(f, "document `{name}`"),
            SourceName::Url(url) => write!(f, "URL `{url}`"),
            SourceName::Etcd { key, revision } => match revision {
                Some(rev) => write!(f, "etcd:{key}@{rev}"),
                None => write!(f, "etcd:{key}"),
            },
        }
    }
}

/// The kind of problem an [`Error`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A required source (file, directory) does not exist.
    SourceMissing,
    /// A source could not be read (permissions, I/O).
    Io,
    /// A source's text is not valid TOML / YAML / JSON.
    Parse,
    /// A source is larger than its size cap, or its document exceeds a parse budget
    /// (depth, values, aliases).
    Limit,
    /// A key the schema requires is absent.
    MissingKey,
    /// A value violates a section's JSON Schema (type, range, pattern, …).
    Schema,
    /// A key that no registered section owns, or that no field of its section owns.
    UnknownKey,
    /// A value passed the schema but could not be deserialized into the section type.
    Deserialize,
    /// A section's own `validate` check failed.
    Validation,
    /// A readiness hook refused the candidate.
    Veto,
    /// A resolver could not build its value from the candidate's sections.
    Resolve,
    /// A reload did not finish in time.
    Timeout,
    /// A requested version is not available (rollback to a version no longer kept, …).
    NotFound,
    /// A reload was refused for now: a cooldown or a backoff after failures is running.
    Throttled,
    /// A post-publish health check failed; the previous version was republished.
    HealthCheck,
    /// A remote source refused the credentials sent (HTTP 401 or 403).
    Unauthorized,
    /// The state dir is another process's: it holds the folder's lock. Not about the
    /// configuration; the message names the folder and the holder's PID.
    InUse,
}

impl ErrorKind {
    /// Whether an input with this error could not be read at all (its size, its bytes,
    /// its syntax): nothing in it could be checked.
    pub(crate) fn is_unreadable(self) -> bool {
        matches!(self, ErrorKind::Parse | ErrorKind::Limit | ErrorKind::Io)
    }

    /// A short, stable, lower-case name (`"schema"`, `"parse"`, …) for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::SourceMissing => "source_missing",
            ErrorKind::Io => "io",
            ErrorKind::Parse => "parse",
            ErrorKind::Limit => "limit",
            ErrorKind::MissingKey => "missing_key",
            ErrorKind::Schema => "schema",
            ErrorKind::UnknownKey => "unknown_key",
            ErrorKind::Deserialize => "deserialize",
            ErrorKind::Validation => "validation",
            ErrorKind::Veto => "veto",
            ErrorKind::Resolve => "resolve",
            ErrorKind::Timeout => "timeout",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Throttled => "throttled",
            ErrorKind::HealthCheck => "health_check",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::InUse => "in_use",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with a candidate configuration: what went wrong, for which key, in which source.
///
/// Messages never contain the value of a secret field. `{:?}` reads like `{}` (so does
/// `main` returning `Err`); `{:#?}` shows the fields.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    key: Option<String>,
    pub(crate) source: Option<SourceName>,
    message: String,
}

impl Error {
    /// Creates an error of `kind` with a message saying what was expected.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            key: None,
            source: None,
            message: message.into(),
        }
    }

    /// Sets the dotted key path the error is about (`"limits.max_body_bytes"`).
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.key = (!key.is_empty()).then_some(key);
        self
    }

    /// Sets the source that provided the offending value.
    pub fn with_source(mut self, source: SourceName) -> Self {
        self.source = Some(source);
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The dotted key path, when the error is about one key.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The JSON pointer of the key (`/limits/max_body_bytes`), when the error is about one key.
    pub fn pointer(&self) -> Option<String> {
        self.key.as_deref().map(dotted_to_pointer)
    }

    /// Where the offending value came from, when known.
    pub fn source(&self) -> Option<&SourceName> {
        self.source.as_ref()
    }

    /// What went wrong and what was expected, without key or source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with its message passed through `f`.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))] // used by the fleet's NACK
    pub(crate) fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }
}

/// "`key` in source: message", like figment's errors; the kind is in [`Error::kind`].
///
/// A missing key is in no source: its message says which sources set its section.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = self
            .source
            .as_ref()
            .filter(|_| self.kind != ErrorKind::MissingKey);
        match (&self.key, source) {
            (Some(key), Some(source)) => write!(f, "`{key}` in {source}: ")?,
            (Some(key), None) => write!(f, "`{key}`: ")?,
            (None, Some(source)) => write!(f, "{source}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Reads like [`Display`](fmt::Display): `main` returning `Err`, `unwrap` and `expect`
/// print `Debug`, and a person reads it. The alternate form (`{:#?}`) shows the fields.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("source", &self.source)
            .field("message", &self.message)
            .finish()
    }
}

impl std::error::Error for Error {}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Error", 5)?;
        s.serialize_field("kind", self.kind.as_str())?;
        s.serialize_field("key", &self.key)?;
        s.serialize_field("pointer", &self.pointer())?;
        s.serialize_field("source", &self.source.as_ref().map(ToString::to_string))?;
        s.serialize_field("message", &self.message)?;
        s.end()
    }
}

/// Every problem found in one candidate configuration; never empty.
///
/// A candidate is checked as a whole, so a rejection reports all of its problems at
/// once rather than the first one, one line each. `{:?}` reads like `{}`, so a `main`
/// that returns `Result<(), Errors>` prints, when the configuration is wrong:
///
/// ```text
/// Error: configuration rejected, 2 errors:
///   - `limtis` in file `/etc/my-service/app.toml`: unknown section: no registered section is at this key — did you mean `limits`?
///   - `limits.max_body_bytes` in file `/etc/my-service/app.toml`: expected a value >= 1, found integer 0
/// ```
///
/// `{:#?}` shows each error's fields (kind, key, source, message).
#[derive(Clone, PartialEq, Eq)]
pub struct Errors(Vec<Error>);

impl Errors {
    /// Wraps a list of errors. Returns `None` when the list is empty.
    pub fn from_vec(errors: Vec<Error>) -> Option<Self> {
        (!errors.is_empty()).then_some(Errors(errors))
    }

    /// The errors, in the order they were found.
    pub fn as_slice(&self) -> &[Error] {
        &self.0
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a value of this type holds at least one error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.0.iter()
    }

    /// Whether any error is of `kind`.
    pub fn has(&self, kind: ErrorKind) -> bool {
        self.0.iter().any(|e| e.kind == kind)
    }
}

impl From<Error> for Errors {
    fn from(error: Error) -> Self {
        Errors(vec![error])
    }
}

impl IntoIterator for Errors {
    type Item = Error;
    type IntoIter = std::vec::IntoIter<Error>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a Error;
    type IntoIter = std::slice::Iter<'a, Error>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            // The state dir is taken: nothing was wrong with the configuration.
            [one] if one.kind == ErrorKind::InUse => write!(f, "{one}"),
            [one] => write!(f, "configuration rejected: {one}"),
            many => {
                write!(f, "configuration rejected, {} errors:", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Reads like [`Display`](fmt::Display), one line per error; `{:#?}` shows the fields.
impl fmt::Debug for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        f.debug_tuple("Errors").field(&self.0).finish()
    }
}

impl std::error::Error for Errors {}

impl serde::Serialize for Errors {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.0)
    }
}

/// Turns `a.b.c` into the JSON pointer `/a/b/c`, escaping `~` and `/` per RFC 6901.
pub(crate) fn dotted_to_pointer(key: &str) -> String {
    let mut pointer = String::new();
    if !key.is_empty() {
        key.split('.')
            .for_each(|seg| push_pointer_segment(&mut pointer, seg));
    }
    pointer
}

/// Appends `/segment` to a JSON pointer, escaping `~` and `/` per RFC 6901.
pub(crate) fn push_pointer_segment(pointer: &mut String, segment: &str) {
    pointer.push('/');
    for c in segment.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// Turns the JSON pointer `/a/b/c` into the dotted key `a.b.c`.
pub(crate) fn pointer_to_dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// `base.rel`, or whichever of the two is not empty.
pub(crate) fn join_key(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (_, true) => base.to_owned(),
        (true, false) => rel.to_owned(),
        (false, false) => format!("{base}.{rel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_key_source_and_message_like_figment() {
        let e = Error::new(ErrorKind::Schema, "expected integer, found string")
            .with_key("limits.max_body_bytes")
            .with_source(SourceName::File("conf/app.toml".into()));
        assert_eq!(
            e.to_string(),
            "`limits.max_body_bytes` in file `conf/app.toml`: expected integer, found string"
        );
        assert_eq!(e.pointer().as_deref(), Some("/limits/max_body_bytes"));
    }

    #[test]
    fn pointer_round_trip_escapes() {
        assert_eq!(dotted_to_pointer("a.b/c.d~e"), "/a/b~1c/d~0e");
        assert_eq!(pointer_to_dotted("/a/b~1c/d~0e"), "a.b/c.d~e");
        assert_eq!(pointer_to_dotted(""), "");
    }

    #[test]
    fn errors_list_every_problem() {
        let errs = Errors::from_vec(vec![
            Error::new(ErrorKind::Parse, "bad"),
            Error::new(ErrorKind::MissingKey, "missing").with_key("a.b"),
        ])
        .expect("two errors");
        assert_eq!(errs.len(), 2);
        assert!(errs.has(ErrorKind::MissingKey));
        assert_eq!(
            errs.to_string(),
            "configuration rejected, 2 errors:\n  - bad\n  - `a.b`: missing"
        );
        assert!(Errors::from_vec(vec![]).is_none());
    }

    #[test]
    fn debug_reads_like_display_and_the_alternate_form_shows_the_fields() {
        let e = Error::new(ErrorKind::Validation, "must not be empty")
            .with_key("greeting.message")
            .with_source(SourceName::EnvVar("APP_GREETING__MESSAGE".into()));
        let errs = Errors::from(e.clone());
        assert_eq!(format!("{e:?}"), e.to_string());
        assert_eq!(format!("{errs:?}"), errs.to_string());
        let fields = format!("{errs:#?}");
        for part in [
            "kind: Validation",
            "greeting.message",
            "APP_GREETING__MESSAGE",
        ] {
            assert!(fields.contains(part), "{part} in {fields}");
        }
    }
}
