//! The environment overlay.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use super::{Layer, ParseLimits, Source};
use crate::error::{Error, ErrorKind, SourceName};
use crate::keys::{KeyTarget, KeysSlot, Types};

/// Environment variables with a prefix, nested by a separator: `APP_LIMITS__MAX_BODY_BYTES=5`
/// sets `limits.max_body_bytes` to `5`.
///
/// Added to an [`EaCAccessor`](crate::EaCAccessor)'s builder, the overlay maps a
/// variable only when it lands on a key that a registered section owns, matching
/// section and field names in any case; every other variable with the prefix (the
/// service's own `APP_ADMIN_TOKEN`, a typo) is ignored and never shown anywhere. A
/// variable that lands on a key but whose value is not UTF-8 is an error naming it.
///
/// Values are read as the section's schema says the key is:
///
/// | the field is | the variable's text is read as |
/// |---|---|
/// | a string (or may be one) | that string, as it is: `12345678901234567` stays text |
/// | an integer / a number | a number, in decimal |
/// | a boolean | `true` or `false`, in any case |
/// | a list | a JSON array when it starts with `[` (`["a", "b"]`, `[1, 2]`), else items separated by commas (`a,b` → `["a", "b"]`, each item read by the item type; the empty text is the empty list) |
/// | a map | a JSON object |
/// | optional (`Option<T>`) | as `T`; the empty text is null |
/// | anything (`serde_json::Value`) | a TOML-like scalar: `8080` an integer, `true` a boolean, `[1, 2]` an array, else a string |
///
/// Text that does not read as the type is kept as a string, so that the schema rejects
/// it with an error naming the variable and the type expected. Errors never show a value.
///
/// Read on its own (outside a builder), the overlay knows no schema: it maps every
/// variable with the prefix, lower-cases keys, and reads values as TOML-like scalars.
///
/// ```
/// use eac_accessor::source::Env;
///
/// let env = Env::prefixed("APP_");
/// // In tests, or to read from somewhere else than the process environment:
/// let fixed = Env::prefixed("APP_").vars([("APP_GREETING__MESSAGE", "hi")]);
/// # let _ = (env, fixed);
/// ```
#[derive(Clone)]
pub struct Env {
    prefix: String,
    separator: String,
    vars: Option<Arc<Vec<(OsString, OsString)>>>,
    keys: Option<KeysSlot>,
}

impl Env {
    /// Variables whose names start with `prefix` (ASCII case-insensitive), nested by `__`.
    pub fn prefixed(prefix: impl Into<String>) -> Self {
        Env {
            prefix: prefix.into(),
            separator: "__".to_owned(),
            vars: None,
            keys: None,
        }
    }

    /// Sets the nesting separator (default `__`).
    pub fn separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// Reads these variables instead of the process environment.
    pub fn vars<K, V>(self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.vars_os(vars.into_iter().map(|(k, v)| (k.into(), v.into())))
    }

    /// Reads these variables instead of the process environment, as the OS gives them:
    /// names and values need not be UTF-8.
    ///
    /// ```
    /// use std::ffi::OsStr;
    /// use std::os::unix::ffi::OsStrExt;
    /// use eac_accessor::source::Env;
    ///
    /// // "café" in Latin-1: not UTF-8.
    /// let latin1 = OsStr::from_bytes(b"caf\xe9");
    /// let env = Env::prefixed("APP_").vars_os([("APP_GREETING__MESSAGE", latin1)]);
    /// # let _ = env;
    /// ```
    pub fn vars_os<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.vars = Some(Arc::new(vars));
        self
    }

    /// Maps variables onto the keys the builder's sections own, once it is built.
    pub(crate) fn bind(&mut self, keys: KeysSlot) {
        self.keys = Some(keys);
    }

    fn parts_of(&self, var: &str) -> Option<Vec<String>> {
        let head = var.get(..self.prefix.len())?;
        if !head.eq_ignore_ascii_case(&self.prefix) {
            return None;
        }
        let rest = &var[self.prefix.len()..];
        let parts: Vec<String> = rest
            .split(self.separator.as_str())
            .map(str::to_ascii_lowercase)
            .collect();
        parts.iter().all(|p| !p.is_empty()).then_some(parts)
    }
}

// Never the values: they may hold secrets.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("prefix", &self.prefix)
            .field("separator", &self.separator)
            .field("fixed_vars", &self.vars.as_ref().map(|v| v.len()))
            .finish_non_exhaustive()
    }
}

impl Source for Env {
    fn load(&self) -> Result<Vec<Layer>, Vec<Error>> {
        let process;
        let vars: &[(OsString, OsString)] = match &self.vars {
            Some(vars) => vars,
            None => {
                process = std::env::vars_os().collect::<Vec<_>>();
                &process
            }
        };
        let keys = self.keys.as_ref().and_then(|slot| slot.get());
        let mut sorted = Vec::new();
        let mut errors = Vec::new();
        for (name, value) in vars {
            // A name that is not UTF-8 cannot spell a key.
            let Some(parts) = name.to_str().and_then(|n| self.parts_of(n)) else {
                continue;
            };
            let var = name.to_string_lossy().into_owned();
            let target = match keys {
                Some(keys) => match keys.target(&parts) {
                    Some(target) => Some(target),
                    None => continue, // not configuration: never read, never shown
                },
                None => None,
            };
            let path = target
                .as_ref()
                .map_or_else(|| parts.clone(), |t| t.path.clone());
            let Some(text) = value.to_str() else {
                errors.push(
                    Error::new(
                        ErrorKind::Parse,
                        "the value is not valid UTF-8; set it as UTF-8 text",
                    )
                    .with_key(path.join("."))
                    .with_source(SourceName::EnvVar(var)),
                );
                continue;
            };
            let value = match &target {
                Some(target) => coerce(text, target),
                None => guess(text),
            };
            sorted.push((path, var, value));
        }
        // Deterministic, and a parent key comes before its children.
        sorted.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));

        let mut data = Map::new();
        let mut names = BTreeMap::new();
        for (parts, var, value) in sorted {
            if insert(&mut data, &parts, value).is_err() {
                errors.push(
                    Error::new(
                        ErrorKind::Parse,
                        "sets a key below one that another variable sets to a plain value",
                    )
                    .with_key(parts.join("."))
                    .with_source(SourceName::EnvVar(var)),
                );
                continue;
            }
            names.insert(parts.join("."), var);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut layer = Layer::from_serialize(SourceName::Env(self.prefix.clone()), &data)
            .map_err(|e| vec![e])?;
        layer.env_vars = Some(Arc::new(names));
        Ok(vec![layer])
    }
}

/// `text` as the schema's type at `target` says; as a string when it does not read so.
fn coerce(text: &str, target: &KeyTarget<'_>) -> Value {
    coerce_as(text, target.types(), &|| target.item_types())
}

fn coerce_as(text: &str, types: Types, items: &dyn Fn() -> Types) -> Value {
    let trimmed = text.trim();
    if types.string {
        return Value::from(text);
    }
    if types.any {
        return guess(text);
    }
    if types.integer {
        if let Ok(n) = trimmed.parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(n) = trimmed.parse::<u64>() {
            return Value::from(n);
        }
    }
    if types.number
        && let Some(n) = trimmed
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    if types.boolean {
        for b in [true, false] {
            if trimmed.eq_ignore_ascii_case(&b.to_string()) {
                return Value::Bool(b);
            }
        }
    }
    if types.array {
        if trimmed.starts_with('[') {
            if let Ok(list @ Value::Array(_)) = serde_json::from_str(trimmed) {
                return list;
            }
        } else if trimmed.is_empty() {
            return Value::Array(Vec::new());
        } else {
            let item_types = items();
            return Value::Array(
                trimmed
                    .split(',')
                    .map(|item| coerce_as(item.trim(), item_types, &Types::default))
                    .collect(),
            );
        }
    }
    if types.object
        && trimmed.starts_with('{')
        && let Ok(map @ Value::Object(_)) = serde_json::from_str(trimmed)
    {
        return map;
    }
    if types.null && trimmed.is_empty() {
        return Value::Null;
    }
    Value::from(text)
}

/// A TOML-like scalar: what a variable means when no schema says.
///
/// The grammar is figment's (0.10, `Value::from_str`), which read these values before:
/// `true` / `false`; a number, read as an integer, or as a float when it holds a `.`; a
/// `"quoted"` string with TOML's escapes or a `'c'` character; `[a, b]` and `{k = v}`,
/// nested; anything else the text itself, trimmed. Text that does not read whole as one
/// value (an unclosed bracket, a bad escape, `a, b` at the top, lists and maps nested
/// deeper than [`ParseLimits`]' default depth) is the string as it is.
fn guess(text: &str) -> Value {
    let mut reader = Loose {
        rest: text,
        depth_left: ParseLimits::default().depth(),
    };
    match reader.value() {
        Some(value) if reader.rest.is_empty() => value,
        _ => Value::from(text),
    }
}

/// The reader of [`guess`]: what is left of the text; each step either reads a value and
/// moves on, or fails and the caller takes the whole text as a string.
struct Loose<'a> {
    rest: &'a str,
    /// How many more lists and maps may open: the reader recurses into each.
    depth_left: usize,
}

impl Loose<'_> {
    fn skip_spaces(&mut self) {
        self.rest = self
            .rest
            .trim_start_matches(|c: char| c.is_ascii_whitespace());
    }

    fn eat(&mut self, token: &str) -> bool {
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_spaces();
        let value = if self.eat("true") {
            Value::Bool(true)
        } else if self.eat("false") {
            Value::Bool(false)
        } else if self.rest.starts_with('{') {
            Value::Object(self.list("{", "}", Self::entry)?.into_iter().collect())
        } else if self.rest.starts_with('[') {
            Value::Array(self.list("[", "]", Self::value)?)
        } else if self.rest.starts_with('"') {
            Value::String(self.quoted()?)
        } else if self.eat("'") {
            let mut chars = self.rest.chars();
            let c = chars.next()?;
            self.rest = chars.as_str();
            if !self.eat("'") {
                return None;
            }
            Value::String(c.to_string())
        } else {
            let end = self
                .rest
                .find([',', '{', '}', '[', ']'])
                .unwrap_or(self.rest.len());
            let (word, rest) = self.rest.split_at(end);
            self.rest = rest;
            number_or_text(word.trim())
        };
        self.skip_spaces();
        Some(value)
    }

    /// `open item, item… close`, a comma after the last item allowed.
    fn list<T>(
        &mut self,
        open: &str,
        close: &str,
        mut item: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<Vec<T>> {
        if !self.eat(open) {
            return None;
        }
        // A failure fails the whole read, so only a list that closes gives its level back.
        self.depth_left = self.depth_left.checked_sub(1)?;
        let mut items = Vec::new();
        while !self.eat(close) {
            items.push(item(self)?);
            if !self.eat(",") {
                if !self.eat(close) {
                    return None;
                }
                break;
            }
        }
        self.depth_left += 1;
        Some(items)
    }

    /// `key = value` in a `{…}`: the key a `"quoted"` string or a bare word of letters,
    /// digits, `_` and `-`.
    fn entry(&mut self) -> Option<(String, Value)> {
        self.skip_spaces();
        let key = if self.rest.starts_with('"') {
            self.quoted()?
        } else {
            let end = self
                .rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(self.rest.len());
            if end == 0 {
                return None;
            }
            let (key, rest) = self.rest.split_at(end);
            self.rest = rest;
            key.to_owned()
        };
        self.skip_spaces();
        if !self.eat("=") {
            return None;
        }
        Some((key, self.value()?))
    }

    /// A `"quoted"` string, its escapes read.
    fn quoted(&mut self) -> Option<String> {
        let body = self.rest.strip_prefix('"')?;
        let mut escaped = false;
        let end = body.find(|c: char| {
            let close = !escaped && c == '"';
            escaped = !escaped && c == '\\';
            close
        })?;
        self.rest = &body[end + 1..];
        unescape(&body[..end])
    }
}

/// The text between a string's quotes with TOML's escapes read (`\n`, `\"`, `\u00e9`,
/// `\U0001F600`…); none for a bad escape or a control character other than a tab.
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                '"' => '"',
                '\\' => '\\',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                u @ ('u' | 'U') => {
                    let digits = if u == 'u' { 4 } else { 8 };
                    let mut code = 0u32;
                    for _ in 0..digits {
                        code = code * 16 + chars.next()?.to_digit(16)?;
                    }
                    char::from_u32(code)?
                }
                _ => return None,
            }),
            '\t' | '\u{20}'..='\u{7e}' | '\u{80}'.. => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// A bare word: an integer, a float when it holds a `.` (null when it overflows to an
/// infinity, as JSON has none), else the word.
fn number_or_text(word: &str) -> Value {
    if word.contains('.')
        && let Ok(float) = word.parse::<f64>()
    {
        return Number::from_f64(float).map_or(Value::Null, Value::Number);
    }
    if let Ok(int) = word.parse::<u64>() {
        Value::from(int)
    } else if let Ok(int) = word.parse::<i64>() {
        Value::from(int)
    } else {
        Value::from(word)
    }
}

/// Inserts `value` at `parts`; fails when a prefix of `parts` already holds a non-map.
fn insert(map: &mut Map<String, Value>, parts: &[String], value: Value) -> Result<(), ()> {
    let (last, parents) = parts.split_last().ok_or(())?;
    let mut current = map;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        current = match entry {
            Value::Object(m) => m,
            _ => return Err(()),
        };
    }
    match current.get(last) {
        Some(Value::Object(_)) => Err(()),
        _ => {
            current.insert(last.clone(), value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Keys, SectionKeys};
    use serde_json::json;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    /// An overlay bound to one section, `upstream`, as a builder binds it.
    fn bound(vars: Vec<(&str, &OsStr)>) -> Result<serde_json::Value, Vec<Error>> {
        let schema = json!({
            "type": "object",
            "properties": {
                "api_key": {"type": "string"},
                "port": {"type": "integer"},
                "ratio": {"type": "number"},
                "tls": {"type": "boolean"},
                "retries": {"type": ["integer", "null"]},
                "hosts": {"type": "array", "items": {"type": "string"}},
                "ports": {"type": "array", "items": {"type": "integer"}},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": true
            }
        });
        let keys = Keys::new(
            vec![SectionKeys {
                path: "upstream",
                schema,
                allow_unknown: false,
            }],
            false,
        );
        let slot = KeysSlot::default();
        let _ = slot.set(Arc::new(keys));
        let mut env = Env::prefixed("APP_").vars_os(vars);
        env.bind(slot);
        let layers = env.load()?;
        Ok(super::super::merge(layers)?.document)
    }

    #[test]
    fn a_bound_overlay_reads_values_as_the_schema_types_them() {
        let s = |v: &'static str| OsStr::new(v);
        let document = bound(vec![
            ("APP_UPSTREAM__API_KEY", s("12345678901234567")),
            ("APP_UPSTREAM__PORT", s("8080")),
            ("APP_UPSTREAM__RATIO", s("0.5")),
            ("APP_UPSTREAM__TLS", s("TRUE")),
            ("APP_UPSTREAM__RETRIES", s("")),
            ("APP_UPSTREAM__HOSTS", s("a.example, b.example")),
            ("APP_UPSTREAM__PORTS", s("[1, 2]")),
            ("APP_UPSTREAM__HEADERS__X_TRACE", s("on")),
            ("APP_UPSTREAM__EXTRA", s("42")),
        ])
        .unwrap();
        assert_eq!(
            document,
            json!({"upstream": {
                "api_key": "12345678901234567",
                "port": 8080,
                "ratio": 0.5,
                "tls": true,
                "retries": null,
                "hosts": ["a.example", "b.example"],
                "ports": [1, 2],
                "headers": {"x_trace": "on"},
                "extra": 42,
            }})
        );
    }

    #[test]
    fn a_bound_overlay_keeps_text_that_does_not_fit_for_the_schema_to_reject() {
        let document = bound(vec![("APP_UPSTREAM__PORT", OsStr::new("huge"))]).unwrap();
        assert_eq!(document, json!({"upstream": {"port": "huge"}}));
    }

    #[test]
    fn a_bound_overlay_ignores_variables_that_land_on_no_key() {
        let document = bound(vec![
            ("APP_ADMIN_TOKEN", OsStr::new("t0ken")),
            ("APP_UPSTREAM__API_KEE", OsStr::new("typo")),
            ("APP_UPSTREAM", OsStr::new("1")),
            ("APP_UPSTREAM__PORT__X", OsStr::new("1")),
            // Not UTF-8, but not configuration either: ignored, not an error.
            ("APP_STATE_DIR", OsStr::from_bytes(b"/tmp/caf\xe9")),
        ])
        .unwrap();
        assert_eq!(document, json!({}));
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_naming_the_variable() {
        let errors = bound(vec![(
            "APP_UPSTREAM__API_KEY",
            OsStr::from_bytes(b"caf\xe9"),
        )])
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].key(), Some("upstream.api_key"));
        assert_eq!(
            errors[0].source(),
            Some(&SourceName::EnvVar("APP_UPSTREAM__API_KEY".into()))
        );
        assert!(!errors[0].to_string().contains("caf"), "{}", errors[0]);
    }

    #[test]
    fn nests_lowercases_and_parses_scalars() {
        let layers = Env::prefixed("APP_")
            .vars([
                ("APP_LIMITS__MAX_BODY_BYTES", "5"),
                ("APP_FEATURES__SHOUT", "true"),
                ("APP_GREETING__MESSAGE", "hello world"),
                ("OTHER_X", "1"),
                ("APP_", "ignored"),
                ("APP_A____B", "ignored"),
            ])
            .load()
            .unwrap();
        let kept = super::super::provenance::keep(&layers);
        let merged = super::super::merge(layers).unwrap();
        assert_eq!(
            merged.document,
            serde_json::json!({
                "limits": {"max_body_bytes": 5},
                "features": {"shout": true},
                "greeting": {"message": "hello world"},
            })
        );
        assert_eq!(
            kept.provenance().source_of("limits.max_body_bytes"),
            Some(SourceName::EnvVar("APP_LIMITS__MAX_BODY_BYTES".into()))
        );
    }

    #[test]
    fn conflicting_variables_are_reported_by_name() {
        let errors = Env::prefixed("APP_")
            .vars([("APP_A", "1"), ("APP_A__B", "2")])
            .load()
            .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].source(),
            Some(&SourceName::EnvVar("APP_A__B".into()))
        );
    }

    /// What figment 0.10's `Value::from_str` made of `text`, as JSON: the reference the
    /// scalar reader replaced.
    fn figment_guess(text: &str) -> Value {
        let value: figment::value::Value = text.parse().unwrap_or_else(|e| match e {});
        serde_json::to_value(value).unwrap_or_else(|_| Value::from(text))
    }

    #[test]
    fn guesses_read_scalars_lists_and_maps_and_keep_anything_else_as_text() {
        for (text, expected) in [
            ("8080", json!(8080)),
            (" -2 ", json!(-2)),
            ("1.5", json!(1.5)),
            ("1e3", json!("1e3")),
            ("1.0e999", json!(null)),
            ("true", json!(true)),
            ("  false ", json!(false)),
            ("trueish", json!("trueish")),
            ("[1, two, \"3\"]", json!([1, "two", "3"])),
            ("[1,]", json!([1])),
            ("{a = 1, \"b.c\" = [x]}", json!({"a": 1, "b.c": ["x"]})),
            ("\"tab\\there \\u00e9\"", json!("tab\there é")),
            ("\"é\\n\"", json!("é\n")),
            ("'é'", json!("é")),
            ("'c'", json!("c")),
            ("  spaced words  ", json!("spaced words")),
            ("a, b", json!("a, b")),
            ("[1, 2", json!("[1, 2")),
            ("\"bad \\q escape\"", json!("\"bad \\q escape\"")),
            ("", json!("")),
        ] {
            assert_eq!(guess(text), expected, "{text:?}");
            if text.is_ascii() || !text.contains('\\') {
                assert_eq!(figment_guess(text), expected, "figment on {text:?}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]
        /// Text built of the grammar's own characters reads as figment read it. ASCII
        /// only: figment slices a quoted string by a character count where a byte count
        /// is needed, so before an escape a non-ASCII character panics it or loses text
        /// (`"é\\n"`); the reader's own test below covers that case.
        #[test]
        fn guesses_agree_with_figment(text in "[\\[\\]{}=,\"'\\\\ \t.+\\-_0-9a-fnrtuUx\u{1}]{0,24}") {
            proptest::prop_assert_eq!(guess(&text), figment_guess(&text));
        }

        /// And so do values made of well-formed parts, nested.
        #[test]
        fn well_formed_values_agree_with_figment(text in well_formed()) {
            proptest::prop_assert_eq!(guess(&text), figment_guess(&text));
        }
    }

    /// Well-formed values of the grammar, nested a few levels, with spaces around.
    fn well_formed() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            (-1e6f64..1e6).prop_map(|f| format!("{f:?}")),
            "[a-z][a-z0-9_ -]{0,6}",
            "\"([a-z ]|\\\\[nt\"\\\\]|\\\\u00[0-7][0-9a-f]){0,6}\"",
            "'[a-z]'",
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
                proptest::collection::vec(("[a-z_][a-z0-9_-]{0,4}", inner), 0..4).prop_map(
                    |entries| {
                        let entries: Vec<String> =
                            entries.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                        format!("{{ {} }}", entries.join(", "))
                    }
                ),
            ]
        })
        .prop_map(|value| format!(" {value} "))
    }

    /// `s` as a `"quoted"` value of the grammar: quotes, backslashes and control
    /// characters escaped; other characters kept, or escaped as `\u`/`\U` too when
    /// `escape_others` is 1 (every one) or 2 (every other one).
    fn quote(s: &str, escape_others: u8) -> String {
        let mut out = String::from("\"");
        for (i, c) in s.chars().enumerate() {
            let escape = escape_others == 1 || (escape_others == 2 && i % 2 == 0);
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\t' if !escape => out.push('\t'),
                c if c.is_control() || escape => match u32::from(c) {
                    code @ 0..=0xffff if i % 3 != 0 => out.push_str(&format!("\\u{code:04x}")),
                    code => out.push_str(&format!("\\U{code:08X}")),
                },
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// Text mixing the grammar's characters with non-ASCII letters, marks, spaces and
    /// controls: what a variable may hold.
    const MIXED: &str = "[\\[\\]{}=,\"'\\\\ \t\r\n\u{b}\u{c}\u{0}\u{7f}.+\\-_0-9a-fnrtuUx\
                         é日本😀\u{301}\u{feff}\u{2028}\u{a0}\u{3000}]{0,32}";

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 4000,
            max_global_rejects: 20_000,
            ..proptest::test_runner::Config::default()
        })]
        /// Any text reads without a panic, and text kept as a string is kept whole: the
        /// text itself, or (a bare word) the text trimmed.
        #[test]
        fn guesses_keep_any_unicode_text_they_do_not_read(
            text in proptest::prop_oneof![proptest::prelude::any::<String>(), MIXED],
        ) {
            if let Value::String(s) = guess(&text) {
                let quoted = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
                if !(quoted.starts_with('"') || quoted.starts_with('\'')) {
                    proptest::prop_assert!(s == text || s == text.trim(), "{text:?} -> {s:?}");
                }
            }
        }

        /// Any string, quoted with its escapes (`\u`, `\U` for any character, before or
        /// after non-ASCII text), reads back as itself, alone, in a list or in a map.
        #[test]
        fn quoted_unicode_strings_read_back_whole(
            s in proptest::prelude::any::<String>(),
            key in proptest::prelude::any::<String>(),
            c in proptest::prelude::any::<char>(),
            escape_others in 0u8..3,
        ) {
            let (q, k) = (quote(&s, escape_others), quote(&key, escape_others));
            proptest::prop_assert_eq!(guess(&format!(" {q}\t")), json!(s));
            proptest::prop_assert_eq!(guess(&format!("[{q}, '{c}']")), json!([s, c.to_string()]));
            proptest::prop_assert_eq!(guess(&format!("{{{k} = {q}}}")), json!({key: s}));
        }

        /// Unicode text that figment reads reads as figment read it. Skipped: text that
        /// panics figment, and text with a non-ASCII character before a backslash, which
        /// figment garbles without a panic (`"éa\n"` loses the `a`: it slices by a
        /// character count where a byte count is needed).
        #[test]
        fn unicode_guesses_agree_with_figment_where_figment_reads_them(
            text in proptest::prop_oneof![proptest::prelude::any::<String>(), MIXED],
        ) {
            let garbled = text
                .find('\\')
                .is_some_and(|backslash| !text[..backslash].is_ascii());
            proptest::prop_assume!(!garbled);
            let figment = std::panic::catch_unwind(|| figment_guess(&text));
            proptest::prop_assume!(figment.is_ok());
            proptest::prop_assert_eq!(guess(&text), figment.unwrap_or_default());
        }
    }

    #[test]
    fn guesses_read_edge_inputs_as_figment_does_or_keep_them_as_text() {
        for (text, expected) in [
            // Empty, spaces, whitespace of every kind: a bare word, trimmed.
            ("", json!("")),
            ("   ", json!("")),
            (" \t\r\n ", json!("")),
            ("\u{a0}x\u{3000}", json!("x")),
            ("\u{feff}5", json!("\u{feff}5")),
            ("[1,\t2,\n3,\r\n4]", json!([1, 2, 3, 4])),
            // Numbers.
            ("-0", json!(0)),
            ("+5", json!(5)),
            ("-0.0", json!(-0.0)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("0x1F", json!("0x1F")),
            ("1_000", json!("1_000")),
            ("inf", json!("inf")),
            ("-inf", json!("-inf")),
            ("nan", json!("nan")),
            ("NaN.", json!("NaN.")),
            ("1e999", json!("1e999")),
            ("-1.0e999", json!(null)),
            ("18446744073709551615", json!(u64::MAX)),
            ("18446744073709551616", json!("18446744073709551616")),
            ("-9223372036854775808", json!(i64::MIN)),
            ("-9223372036854775809", json!("-9223372036854775809")),
            // Escapes.
            ("\"\\u00E9\\U0001F600\"", json!("é😀")),
            ("\"\\u0000\"", json!("\u{0}")),
            ("\"\\U0010FFFF\"", json!("\u{10ffff}")),
            ("\"\\uD800\"", json!("\"\\uD800\"")),
            ("\"\\U00110000\"", json!("\"\\U00110000\"")),
            ("\"\\UFFFFFFFF\"", json!("\"\\UFFFFFFFF\"")),
            ("\"\\u12\"", json!("\"\\u12\"")),
            ("\"\\u00e\"", json!("\"\\u00e\"")),
            ("\"\\u{e9}\"", json!("\"\\u{e9}\"")),
            ("\"\\x41\"", json!("\"\\x41\"")),
            // Backslashes and quotes left open.
            ("\\", json!("\\")),
            ("abc\\", json!("abc\\")),
            ("\"abc\\", json!("\"abc\\")),
            ("\"\\\"", json!("\"\\\"")),
            ("\"abc", json!("\"abc")),
            ("'a", json!("'a")),
            ("''", json!("''")),
            ("'''", json!("'")),
            ("[\"a]", json!("[\"a]")),
            ("{a = \"b}", json!("{a = \"b}")),
            // Control characters in a quoted string: only a tab is text.
            ("\"a\tb\"", json!("a\tb")),
            ("\"a\nb\"", json!("\"a\nb\"")),
            ("\"a\rb\"", json!("\"a\rb\"")),
            ("\"a\u{7f}\"", json!("\"a\u{7f}\"")),
            // Non-ASCII text.
            ("'😀'", json!("😀")),
            ("'e\u{301}'", json!("'e\u{301}'")),
            ("\"\u{2028}\u{feff}\"", json!("\u{2028}\u{feff}")),
            ("[日本, é, \"語\"]", json!(["日本", "é", "語"])),
            ("{\"キー\" = 値}", json!({"キー": "値"})),
            // Keys.
            ("{キー = 1}", json!("{キー = 1}")),
            ("{\"\" = 1}", json!({"": 1})),
            (
                "{\"a.b\" = 1, a-b_c = 2, 3 = 4}",
                json!({"a.b": 1, "a-b_c": 2, "3": 4}),
            ),
            ("{\"a\\\"b\\\\\" = 1}", json!({"a\"b\\": 1})),
            ("{a = 1, a = 2}", json!({"a": 2})),
            ("{a b = 1}", json!("{a b = 1}")),
            ("{= 1}", json!("{= 1}")),
            ("{a.b = 1}", json!("{a.b = 1}")),
            // Trailing text.
            ("[1, 2]x", json!("[1, 2]x")),
            ("true false", json!("true false")),
        ] {
            assert_eq!(guess(text), expected, "{text:?}");
            let figment = std::panic::catch_unwind(|| figment_guess(text));
            assert_eq!(figment.ok(), Some(expected), "figment on {text:?}");
        }
    }

    /// Where figment panics or garbles (a non-ASCII character before an escape), the
    /// string reads whole.
    #[test]
    fn guesses_read_escapes_after_non_ascii_text_whole() {
        for (text, expected) in [
            ("\"é\\n\"", "é\n"),
            ("\"éa\\n\"", "éa\n"),
            ("\"日本\\t語\"", "日本\t語"),
            ("\"é\\u00e9\"", "éé"),
            ("\"😀\\\"x\\\"\"", "😀\"x\""),
            ("\"e\u{301}\\\\\"", "e\u{301}\\"),
        ] {
            assert_eq!(guess(text), json!(expected), "{text:?}");
            assert_eq!(guess(&format!("[{text}]")), json!([expected]), "{text:?}");
        }
        let garbled = std::panic::catch_unwind(|| figment_guess("\"éa\\n\""));
        assert_ne!(garbled.ok(), Some(json!("éa\n")), "figment reads it now");
    }

    #[test]
    fn guesses_keep_text_nested_past_the_depth_limit_as_text() {
        let limit = ParseLimits::default().depth();
        let deepest = format!("{}{}", "[".repeat(limit), "]".repeat(limit));
        let mut expected = json!([]);
        for _ in 1..limit {
            expected = json!([expected]);
        }
        assert_eq!(guess(&deepest), expected);
        assert_eq!(figment_guess(&deepest), expected);
        let maps = format!("{}1{}", "{a=".repeat(limit), "}".repeat(limit));
        assert!(guess(&maps).is_object(), "{maps}");

        let too_deep = format!("[{deepest}]");
        assert_eq!(guess(&too_deep), json!(too_deep));
        for text in [
            "[".repeat(100_000),
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
            format!("{}1{}", "{a=".repeat(100_000), "}".repeat(100_000)),
            "[{a=".repeat(50_000),
        ] {
            assert_eq!(guess(&text), json!(text));
        }
    }

    #[test]
    fn a_bound_overlay_keeps_deeply_nested_text_as_text() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let maps = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        let document = bound(vec![
            ("APP_UPSTREAM__HOSTS", OsStr::new(&deep)),
            ("APP_UPSTREAM__PORTS", OsStr::new(&deep)),
            ("APP_UPSTREAM__HEADERS", OsStr::new(&maps)),
            ("APP_UPSTREAM__EXTRA", OsStr::new(&deep)),
        ])
        .unwrap();
        assert_eq!(
            document,
            json!({"upstream": {"hosts": deep, "ports": deep, "headers": maps, "extra": deep}})
        );
    }
}
