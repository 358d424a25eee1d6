//! JSON parsed into a map with the limits counted as the values are built: nesting and
//! the number of values are bounded in the parse itself, with no scan of the bytes
//! before it (TOML and YAML have theirs in `prescan`).
//!
//! Values count as the JSON scan counted them: every string (keys included), number,
//! literal, array and object is one; an array or object nests one level deeper than
//! what holds it, the document's own braces being level 1.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::limits::ParseLimits;
use super::prescan::Breach;

/// Why a document was not parsed.
pub(super) enum Failure {
    /// Beyond the limits.
    Breach(Breach),
    /// Not JSON, or not a map at the top level.
    Invalid(serde_json::Error),
}

/// Parses `text` into its top-level map within `limits`.
pub(super) fn parse(text: &str, limits: &ParseLimits) -> Result<Map<String, Value>, Failure> {
    let budget = Budget {
        nodes: Cell::new(0),
        breach: Cell::new(None),
        max_nodes: limits.nodes(),
        max_depth: limits.depth(),
    };
    let mut parser = serde_json::Deserializer::from_str(text);
    let parsed = Counted {
        budget: &budget,
        depth: 0,
    }
    .deserialize(&mut parser)
    .and_then(|value| parser.end().map(|()| value));
    match (parsed, budget.breach.get()) {
        (Err(e), Some(Breach::Depth { .. })) => {
            Err(Failure::Breach(Breach::Depth { line: e.line() }))
        }
        (Err(_), Some(breach)) => Err(Failure::Breach(breach)),
        (Ok(Value::Object(map)), _) => Ok(map),
        // Said as serde_json says it, with its position: parsed again, which only a
        // refused document pays.
        (Ok(_) | Err(_), _) => Err(Failure::Invalid(
            serde_json::from_str::<Map<String, Value>>(text)
                .err()
                .unwrap_or_else(|| de::Error::custom("expected a map at the top level")),
        )),
    }
}

/// The values counted so far, and what went over a limit.
struct Budget {
    nodes: Cell<usize>,
    breach: Cell<Option<Breach>>,
    max_nodes: usize,
    max_depth: usize,
}

impl Budget {
    /// Counts one value.
    #[inline]
    fn node<E: de::Error>(&self) -> Result<(), E> {
        let nodes = self.nodes.get() + 1;
        self.nodes.set(nodes);
        if nodes > self.max_nodes {
            return Err(self.over(Breach::Nodes));
        }
        Ok(())
    }

    /// Counts an array or object opened at `depth`.
    #[inline]
    fn open<E: de::Error>(&self, depth: usize) -> Result<(), E> {
        if depth > self.max_depth {
            // The line is the parser's, filled in from its error.
            return Err(self.over(Breach::Depth { line: 0 }));
        }
        self.node()
    }

    #[cold]
    fn over<E: de::Error>(&self, breach: Breach) -> E {
        self.breach.set(Some(breach));
        E::custom("over the parse limits")
    }
}

/// A value at `depth` (the number of arrays and objects around it), counted.
#[derive(Clone, Copy)]
struct Counted<'b> {
    budget: &'b Budget,
    depth: usize,
}

impl Counted<'_> {
    fn inner(self) -> Self {
        Counted {
            budget: self.budget,
            depth: self.depth + 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Counted<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.node()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.inner();
        self.budget.open(inner.depth)?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.inner();
        self.budget.open(inner.depth)?;
        let mut entries = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.budget.node()?;
            let value = map.next_value_seed(inner)?;
            entries.insert(key, value);
        }
        Ok(Value::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(depth: usize, nodes: usize) -> ParseLimits {
        ParseLimits::default().max_depth(depth).max_nodes(nodes)
    }

    #[test]
    fn parses_what_serde_json_parses() {
        for text in [
            r#"{}"#,
            r#"{"a": 1, "b": -2, "c": 1.5, "d": 1e300, "e": 18446744073709551615}"#,
            r#"{"s": "x\"y\\z\u00e9", "n": null, "t": true, "f": false}"#,
            r#"{"deep": {"list": [1, [2, [3, {"k": "v"}]], {}], "empty": []}}"#,
            r#"{"dup": 1, "dup": 2}"#,
            "{\n  \"pretty\": {\n    \"x\": \"y\"\n  }\n}\n",
        ] {
            let ours = parse(text, &ParseLimits::default()).ok();
            let theirs = serde_json::from_str::<Map<String, Value>>(text).ok();
            assert!(ours.is_some(), "{text}");
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses_with_its_words() {
        for text in [
            r#"[1, 2]"#,
            r#""s""#,
            r#"{"a": }"#,
            r#"{"a": 1} x"#,
            r#"{"a""#,
            "",
            r#"{"d": 1e400}"#,
        ] {
            let Err(Failure::Invalid(ours)) = parse(text, &ParseLimits::default()) else {
                panic!("{text}: accepted or a breach");
            };
            let theirs = serde_json::from_str::<Map<String, Value>>(text).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
        }
    }

    #[test]
    fn counts_values_as_the_scan_did() {
        // 9 values: the object, three keys, 1, the list, 2, 3 and "s".
        let text = r#"{"a": 1, "b": [2, 3], "c": "s"}"#;
        assert!(parse(text, &limits(64, 9)).is_ok());
        assert!(matches!(
            parse(text, &limits(64, 8)),
            Err(Failure::Breach(Breach::Nodes))
        ));
    }

    #[test]
    fn a_level_too_deep_is_refused_at_its_line() {
        let text = "{\n\"a\": {\n\"b\": [\n[1]\n]\n}\n}";
        assert!(parse(text, &limits(4, 100)).is_ok());
        match parse(text, &limits(3, 100)) {
            Err(Failure::Breach(Breach::Depth { line })) => assert_eq!(line, 4),
            _ => panic!("not refused for its depth"),
        }
    }

    /// A document's real depth and number of values, counted on what serde_json made.
    fn measure(value: &Value) -> (usize, usize) {
        match value {
            Value::Object(m) => m.values().fold((1, 1), |(d, n), v| {
                let (vd, vn) = measure(v);
                (d.max(1 + vd), n + 1 + vn)
            }),
            Value::Array(a) => a.iter().fold((1, 1), |(d, n), v| {
                let (vd, vn) = measure(v);
                (d.max(1 + vd), n + vn)
            }),
            _ => (0, 1),
        }
    }

    fn document() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| Value::Number(i.into())),
            "[a-z\\[\\]{}\"\\\\ ]{0,6}".prop_map(Value::String),
        ];
        let value = leaf.prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map("[a-c]{1,2}", value, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest::proptest! {
        #[test]
        fn a_document_passes_at_its_own_depth_and_count_and_not_one_below(
            doc in document(),
            pretty in proptest::bool::ANY,
        ) {
            let text = if pretty {
                serde_json::to_string_pretty(&doc).unwrap()
            } else {
                serde_json::to_string(&doc).unwrap()
            };
            let (depth, nodes) = measure(&doc);
            let parsed = parse(&text, &limits(depth, nodes)).ok().map(Value::Object);
            proptest::prop_assert_eq!(parsed.as_ref(), Some(&doc));
            if depth > 1 {
                let refused = matches!(
                    parse(&text, &limits(depth - 1, nodes)),
                    Err(Failure::Breach(Breach::Depth { .. }))
                );
                proptest::prop_assert!(refused, "depth {} accepted at {}", depth, depth - 1);
            }
            let refused = matches!(
                parse(&text, &limits(depth, nodes - 1)),
                Err(Failure::Breach(Breach::Nodes))
            );
            proptest::prop_assert!(refused, "{} values accepted at {}", nodes, nodes - 1);
        }
    }
}
