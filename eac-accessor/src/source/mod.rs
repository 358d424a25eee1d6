//! Where configuration comes from: files, directories, environment overlays, defaults.
//!
//! Sources are listed on the builder in merge order: a later source's values win over an
//! earlier one's, maps merge key by key, arrays and scalars are replaced (figment's
//! `merge` order, done on JSON values directly).
//! Every source is read again on each reload, so new files and changed variables are seen.
//!
//! | source | reads | missing |
//! |---|---|---|
//! | [`File`] | one TOML, YAML or JSON file | error, unless [`File::optional`] |
//! | [`Dir`] | every `*.toml`, `*.yaml`, `*.yml`, `*.json` directly in a folder, in file-name order, skipping names that start with `.` (YAML is read with the `yaml` feature; without it a YAML file is an error naming the feature) | error |
//! | [`Env`] | variables with a prefix, `__` nesting (`APP_LIMITS__MAX=5` → `limits.max`) | nothing |
//! | [`Defaults`] | a serialized value given in code | — |
//! | [`Memory`] | a document held in memory that can be replaced (tests, cached remote bodies) | — |
//! | `Etcd` (feature `etcd`) | every key under an etcd prefix, watched; see the `etcd` module docs | error at connect |
//!
//! With the `http` feature, `Http` fetches a document from a URL in the
//! background (conditional requests, a body cap, timeouts) and keeps it for the reloads.
//! [`LastGood`] keeps the last published document of a remote source on disk, for a
//! start while the remote is unreachable.
//!
//! Implement [`Source`] for anything else; it returns [`Layer`]s, each named by its
//! [`SourceName`] so that errors can say where a bad value came from.
//!
//! # Bounds
//!
//! A file is read up to its [`SizeCap`] (16 MiB by default) and never further; a
//! document is parsed within [`ParseLimits`] (depth, values, YAML aliases), checked
//! before anything is built. Both are set per source ([`File::max_size`],
//! [`Dir::limits`], [`Memory::limits`], [`Layer::with_limits`]); exceeding one rejects
//! the candidate with an [`ErrorKind::Limit`] error naming the source and the limit.

#[cfg(any(feature = "http", feature = "etcd"))]
mod background;
mod env;
#[cfg(feature = "etcd")]
pub mod etcd;
mod file;
mod format;
#[cfg(feature = "http")]
mod http;
mod json;
mod last_good;
mod limits;
mod memory;
mod prescan;
pub(crate) mod provenance;
mod status;

pub use env::Env;
#[cfg(feature = "etcd")]
pub use etcd::{Etcd, EtcdOptions, EtcdWatch};
pub use file::{Dir, File};
pub use format::Format;
#[cfg(feature = "http")]
pub use http::{Fetched, Http, Started};
pub use last_good::LastGood;
pub use limits::{ParseLimits, SizeCap};
pub use memory::{Defaults, Memory};
pub use status::SourceStatus;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, ErrorKind, Errors, SourceName};

/// A parsed document's top level.
pub(crate) type Dict = serde_json::Map<String, Value>;

/// A provider of configuration: read on every reload, it returns one or more [`Layer`]s.
///
/// A source reports every problem it finds (a directory with two broken files reports
/// both) and never includes a secret's value in an error.
pub trait Source: Send + Sync + fmt::Debug + 'static {
    /// Reads the source now.
    ///
    /// Called on the reload's blocking thread: a source that fetches over the network
    /// does so in the background and returns here what it fetched last.
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>>;

    /// Says that what the last [`load`](Source::load) returned is now the running
    /// configuration: it passed every check and was published (or was found unchanged).
    ///
    /// Called after each successful reload from the sources (not after a rollback, nor a
    /// start on the last good version). A remote source writes its last-known-good cache
    /// here. The default does nothing.
    fn committed(&self) {}

    /// Says which inputs the last [`load`](Source::load) returned (files, remote
    /// documents, etcd keys) were rejected, each with its errors; called before
    /// [`committed`](Source::committed) when the rest of the candidate was published
    /// without them, or instead of it when the candidate was rejected whole. Every source
    /// is told about every rejected input and keeps what concerns its own: a remote
    /// source shows the rejection in its status and does not cache that document. The
    /// default does nothing.
    fn rejected(&self, inputs: &[(SourceName, Errors)]) {
        let _ = inputs;
    }

    /// Asked at start when the candidate read from the sources was rejected (`why`): a
    /// source that keeps a last-known-good copy, and that the errors implicate,
    /// switches to it, says so in its status, and returns `true`; the candidate is then
    /// read once more. The default does nothing and returns `false`.
    ///
    /// A remote source uses it to start from its cache when the server answers with a
    /// document that fails the checks, as it does when the server is down.
    fn fall_back(&self, why: &Errors) -> bool {
        let _ = why;
        false
    }

    /// This source's state, for a source that fetches in the background; `None` (the
    /// default) for one read on demand.
    fn status(&self) -> Option<SourceStatus> {
        None
    }
}

/// One document from one named place, ready to be merged.
///
/// A layer made with [`Layer::text`] is parsed only when the candidate is merged: when
/// every layer's text is the same as at the last successful reload, the reload stops
/// there, unchanged, without parsing anything.
pub struct Layer {
    name: SourceName,
    content: Content,
    /// Identifies the layer's input: equal fingerprints, equal documents.
    fingerprint: u64,
    /// For an env layer: the variable that set each key, for errors.
    env_vars: Option<EnvVarNames>,
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the content: it may hold secrets.
        f.debug_struct("Layer")
            .field("name", &self.name)
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .finish_non_exhaustive()
    }
}

enum Content {
    Parsed(Dict),
    /// An input the source could not read or parse (an etcd value that is not valid
    /// YAML): the merge reports its error, naming it, so that it blocks only itself.
    Failed(Error),
    Text {
        format: Format,
        /// Shared, not copied, with the source that holds it and with the snapshot's
        /// record of its inputs.
        text: Arc<str>,
        limits: ParseLimits,
    },
}

impl Layer {
    /// Parses `text` in `format` into a layer named `name`, now, within the default
    /// [`ParseLimits`].
    ///
    /// A syntax error becomes an [`ErrorKind::Parse`] error and an exceeded budget an
    /// [`ErrorKind::Limit`] error, both naming the source.
    pub fn parse(name: SourceName, format: Format, text: &str) -> Result<Layer, Error> {
        Layer::text(name, format, text).parse_now()
    }

    /// A layer of `text` in `format`, parsed when (and only if) the candidate is merged;
    /// a syntax error or an exceeded budget is reported then, naming the source.
    ///
    /// An `Arc<str>` is shared rather than copied: a source that keeps its text in one
    /// (as [`Memory`] does) hands it over for free.
    pub fn text(name: SourceName, format: Format, text: impl Into<Arc<str>>) -> Layer {
        let text = text.into();
        Layer {
            name,
            fingerprint: text_fingerprint(format, &text),
            content: Content::Text {
                format,
                text,
                limits: ParseLimits::default(),
            },
            env_vars: None,
        }
    }

    /// Parses this layer's text within `limits` instead of the defaults; a layer that
    /// is already parsed is unchanged.
    ///
    /// ```
    /// use eac_accessor::{ErrorKind, SourceName, source::{Format, Layer, ParseLimits}};
    ///
    /// let name = SourceName::Memory("deep".into());
    /// let layer = Layer::text(name, Format::Json, r#"{"a": {"b": {"c": 1}}}"#)
    ///     .with_limits(ParseLimits::default().max_depth(2));
    /// let err = layer.parse_now().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Limit);
    /// assert!(err.message().contains("depth limit of 2"));
    /// ```
    pub fn with_limits(mut self, new: ParseLimits) -> Layer {
        if let Content::Text { limits, .. } = &mut self.content {
            *limits = new;
        }
        self
    }

    /// Parses this layer's text now, if it is not parsed yet.
    ///
    /// Useful to report a broken document at once rather than at the next merge.
    pub fn parse_now(self) -> Result<Layer, Error> {
        match self.content {
            Content::Parsed(_) => Ok(self),
            Content::Failed(ref error) => Err(error.clone()),
            Content::Text {
                format,
                ref text,
                ref limits,
            } => match format.parse(text, limits) {
                Ok(data) => Ok(Layer {
                    content: Content::Parsed(data),
                    ..self
                }),
                Err((kind, message)) => Err(Error::new(kind, message).with_source(self.name)),
            },
        }
    }

    /// Makes a layer from any serializable value whose top level is a map.
    pub fn from_serialize<T: serde::Serialize + ?Sized>(
        name: SourceName,
        value: &T,
    ) -> Result<Layer, Error> {
        let data = serialize_dict(&name, value)?;
        let fingerprint = dict_fingerprint(&data);
        Ok(Layer::parsed(name, data, fingerprint))
    }

    /// A layer that fails the merge with `error` (which names `name`).
    pub(crate) fn failed(name: SourceName, error: Error) -> Layer {
        let fingerprint = xxhash_rust::xxh3::xxh3_64(error.to_string().as_bytes());
        Layer {
            name,
            content: Content::Failed(error),
            fingerprint,
            env_vars: None,
        }
    }

    pub(crate) fn parsed(name: SourceName, data: Dict, fingerprint: u64) -> Layer {
        Layer {
            name,
            content: Content::Parsed(data),
            fingerprint,
            env_vars: None,
        }
    }

    /// The source this layer came from.
    pub fn name(&self) -> &SourceName {
        &self.name
    }

    fn into_dict(self) -> Result<Dict, Error> {
        match self.content {
            Content::Parsed(data) => Ok(data),
            Content::Failed(error) => Err(error),
            Content::Text {
                format,
                text,
                limits,
            } => match format.parse(&text, &limits) {
                Ok(data) => Ok(data),
                Err((kind, message)) => Err(Error::new(kind, message).with_source(self.name)),
            },
        }
    }
}

/// `value` as a figment map, or an error naming `name` when its top level is not a map.
pub(crate) fn serialize_dict<T: serde::Serialize + ?Sized>(
    name: &SourceName,
    value: &T,
) -> Result<Dict, Error> {
    match serde_json::to_value(value) {
        Ok(Value::Object(data)) => Ok(data),
        Ok(_) => Err(Error::new(
            ErrorKind::Parse,
            "expected a map at the top level of the document",
        )
        .with_source(name.clone())),
        Err(e) => Err(Error::new(ErrorKind::Parse, e.to_string()).with_source(name.clone())),
    }
}

pub(crate) fn dict_fingerprint(data: &Dict) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(data).unwrap_or_default())
}

fn text_fingerprint(format: Format, text: &str) -> u64 {
    // One-shot: much faster than the streaming hasher on a large text.
    xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), format as u64)
}

/// One number for a list of layers: their names and inputs, in order.
pub(crate) fn fingerprint(layers: &[Layer]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for layer in layers {
        let name = layer.name.to_string();
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&layer.fingerprint.to_le_bytes());
    }
    h.digest()
}

/// Dotted key → the environment variable that set it.
type EnvVarNames = Arc<BTreeMap<String, String>>;

/// The merged candidate document.
pub(crate) struct Merged {
    pub(crate) document: Value,
}

impl fmt::Debug for Merged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the document: it may hold secrets.
        f.debug_struct("Merged").finish_non_exhaustive()
    }
}

/// A source's one error saying that the one file it reads could not be read, as a layer
/// that fails the merge naming that file; any other errors as they are.
fn unreadable_file(mut errors: Vec<Error>) -> Result<Layer, Vec<Error>> {
    let name = match errors.as_slice() {
        [error] if error.kind().is_unreadable() => match error.source() {
            Some(name @ SourceName::File(_)) => name.clone(),
            _ => return Err(errors),
        },
        _ => return Err(errors),
    };
    Ok(Layer::failed(name, errors.remove(0)))
}

/// Reads every source; reports every source's errors at once.
pub(crate) fn load_layers(sources: &[Box<dyn Source>]) -> Result<Vec<Layer>, Vec<Error>> {
    let mut layers = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        match source.load() {
            Ok(mut l) => layers.append(&mut l),
            // A source that is one input (a file) and could not read it (too large, not
            // UTF-8, an I/O error): the merge reports it, naming it, so that it blocks
            // only itself. A missing required file, or a folder, rejects as before.
            Err(e) => match unreadable_file(e) {
                Ok(failed) => layers.push(failed),
                Err(e) => errors.extend(e),
            },
        }
    }
    if errors.is_empty() {
        Ok(layers)
    } else {
        Err(errors)
    }
}

/// Parses what is not parsed yet (reporting every syntax error) and merges the layers
/// in order: maps key by key, anything else replaced by the later layer.
///
/// Each layer is parsed straight into JSON values and moved into the result, never
/// copied; where a value came from is worked out only when an error needs it, from the
/// layers' input kept with the candidate ([`provenance::Kept`]).
pub(crate) fn merge(layers: Vec<Layer>) -> Result<Merged, Vec<Error>> {
    let mut merged: Option<Dict> = None;
    let mut errors = Vec::new();
    for layer in layers {
        match layer.into_dict() {
            Ok(data) => match &mut merged {
                Some(merged) => merge_into(merged, data),
                None => merged = Some(data),
            },
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Merged {
        document: Value::Object(merged.unwrap_or_default()),
    })
}

/// Merges `over` into `base`: a map into a map key by key, anything else replaces.
fn merge_into(base: &mut Dict, over: Dict) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Object(base)), Value::Object(over)) => merge_into(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer of `text` from a memory source named `name`.
    pub(super) fn layer(name: &str, format: Format, text: &str) -> Layer {
        Layer::text(SourceName::Memory(name.into()), format, text.to_owned())
    }

    #[test]
    fn later_layers_win_and_provenance_names_them() {
        let a = layer("a", Format::Toml, "[s]\nx = 1\ny = 2\n");
        let b = layer(
            "b",
            Format::Json,
            r#"{"s": {"y": 3, "extra": {"deep": true}}}"#,
        );
        let mut env = Layer::from_serialize(
            SourceName::Env("APP_".into()),
            &serde_json::json!({"t": {"z": 1}}),
        )
        .unwrap();
        env.env_vars = Some(Arc::new(BTreeMap::from([(
            "t.z".to_owned(),
            "APP_T__Z".to_owned(),
        )])));
        let layers = vec![a, b, env];
        let kept = provenance::keep(&layers);
        let merged = merge(layers).unwrap();
        assert_eq!(
            merged.document,
            serde_json::json!({"s": {"x": 1, "y": 3, "extra": {"deep": true}}, "t": {"z": 1}})
        );
        let p = kept.provenance();
        assert_eq!(p.source_of("s.x"), Some(SourceName::Memory("a".into())));
        assert_eq!(p.source_of("s.y"), Some(SourceName::Memory("b".into())));
        assert_eq!(
            p.source_of("s.extra.deep"),
            Some(SourceName::Memory("b".into()))
        );
        assert_eq!(
            p.source_of("t.z"),
            Some(SourceName::EnvVar("APP_T__Z".into()))
        );
        // A missing key is attributed to the source of its nearest ancestor.
        assert_eq!(
            p.source_of("s.extra.nope"),
            Some(SourceName::Memory("b".into()))
        );
        assert_eq!(p.source_of("nowhere"), None);
    }

    #[test]
    fn provenance_follows_what_replaced_a_parent() {
        let layers = vec![
            layer(
                "a",
                Format::Toml,
                "servers = [{host = \"x\", port = 80}, {host = \"y\", port = 81}]\n\
                 [s.x]\ndeep = 1\n",
            ),
            layer(
                "b",
                Format::Json,
                r#"{"servers": [{"host": "x"}, {"host": "y"}], "s": {"x": 5}}"#,
            ),
            layer("c", Format::Json, r#"{"s": {"x": {"other": 2}}}"#),
        ];
        let kept = provenance::keep(&layers);
        let merged = merge(layers).unwrap();
        assert_eq!(
            merged.document["servers"][1],
            serde_json::json!({"host": "y"})
        );
        let p = kept.provenance();
        let named = |key| p.source_of(key).map(|s| s.to_string());
        // `b`'s array replaced `a`'s: a key missing under it is `b`'s doing.
        assert_eq!(named("servers.1.port"), named("servers.1"));
        assert_eq!(
            p.source_of("servers.1.port"),
            Some(SourceName::Memory("b".into()))
        );
        // `b` put a scalar where `a`'s map was, `c` a map again: `c` holds `s.x`.
        assert_eq!(
            p.source_of("s.x.deep"),
            Some(SourceName::Memory("c".into()))
        );
        assert_eq!(
            p.source_of("s.x.other"),
            Some(SourceName::Memory("c".into()))
        );
        assert_eq!(
            p.source_of("servers.0.host"),
            Some(SourceName::Memory("b".into()))
        );
    }

    /// figment's `merge` of the same maps: the reference [`merge`] must agree with.
    fn figment_merge(layers: &[Dict]) -> Value {
        use figment::Figment;
        use figment::providers::Serialized;
        layers
            .iter()
            .fold(Figment::new(), |f, layer| {
                f.merge(Serialized::defaults(layer))
            })
            .extract::<Value>()
            .unwrap()
    }

    fn merged(layers: &[Dict]) -> Value {
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, data)| Layer::parsed(SourceName::Memory(i.to_string()), data.clone(), 0))
            .collect();
        merge(layers).unwrap().document
    }

    /// A JSON value whose maps draw keys from a few names, so that layers overlap.
    fn value(depth: u32) -> proptest::strategy::BoxedStrategy<Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6..1e6f64).prop_map(Value::from),
            "[a-z ]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(depth, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("[abc]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
    }

    proptest::proptest! {
        #[test]
        fn merge_agrees_with_figment(
            layers in proptest::collection::vec(
                proptest::collection::btree_map("[abc]", value(3), 0..4),
                1..4,
            )
        ) {
            let layers: Vec<Dict> = layers.into_iter().map(|m| m.into_iter().collect()).collect();
            proptest::prop_assert_eq!(merged(&layers), figment_merge(&layers));
        }
    }

    #[test]
    fn every_format_parses_to_what_figment_made_of_it() {
        let cases = [
            (
                Format::Toml,
                "when = 1979-05-27T07:32:00Z\nday = 1979-05-27\n[s]\nx = 1.5\ny = [1, \"a\", true]\nz = { q = -3 }\n",
            ),
            (
                Format::Yaml,
                "s:\n  1: one\n  x: 1e3\n  y: ~\n  z: [1, 2.5, yes, 'no']\n  b: &b {k: v}\n  c: *b\n",
            ),
            (
                Format::Json,
                r#"{"s": {"big": 18446744073709551615, "neg": -9223372036854775808, "f": 1e300, "n": null, "u": "\u00e9"}}"#,
            ),
        ];
        for (format, text) in cases {
            let ours = format.parse(text, &ParseLimits::default()).unwrap();
            let theirs: figment::value::Dict = match format {
                Format::Toml => toml::from_str(text).unwrap(),
                Format::Yaml => serde_saphyr::from_str(text).unwrap(),
                Format::Json => serde_json::from_str(text).unwrap(),
            };
            let theirs = figment::Figment::from(figment::providers::Serialized::defaults(theirs))
                .extract::<Value>()
                .unwrap();
            assert_eq!(Value::Object(ours), theirs, "{format:?}");
        }
        // figment kept an infinity, which became `null` in JSON; now it is an error.
        let (kind, message) = Format::Yaml
            .parse("x: .inf\n", &ParseLimits::default())
            .unwrap_err();
        assert_eq!(kind, ErrorKind::Parse);
        assert!(
            message.contains("line 1") && message.contains("non-finite"),
            "{message}"
        );
    }

    #[test]
    fn parse_error_names_the_source() {
        let err =
            Layer::parse(SourceName::Memory("m".into()), Format::Toml, "x = = 1").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Parse);
        assert_eq!(err.source(), Some(&SourceName::Memory("m".into())));
    }
}
