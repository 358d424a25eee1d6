//! eac's own JSON Schema checker: the keywords a section's derived schema uses.
//!
//! `#[derive(JsonSchema)]` on a configuration type emits a small part of JSON Schema
//! 2020-12: types, properties and `required`, `additionalProperties`, items and
//! `prefixItems`, `enum` and `const`, number and length bounds, `$ref` into `$defs`,
//! `patternProperties` for maps keyed by integers, and
//! `allOf` / `anyOf` / `oneOf` / `not` for options and enums. This module checks exactly
//! that part, compiled once per section. A schema with any other keyword that asserts
//! something (`pattern`, `multipleOf`, `if`, …) is refused when the accessor is built,
//! naming the keyword: turn on the `jsonschema` feature, and the `jsonschema` crate (the
//! whole specification) checks every section instead.
//!
//! Annotations (`title`, `description`, `default`, `examples`, `format` — an annotation
//! in 2020-12 unless a vocabulary asserts it — …) are read past.

// With the `jsonschema` feature, the kinds and violations serve its errors; the checker
// is unused.
#![cfg_attr(feature = "jsonschema", allow(dead_code))]

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Number, Value};

use crate::error::push_pointer_segment;

/// A rule a value broke, in the words eac's errors are made from (`validate.rs`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A required property is missing.
    Required {
        property: String,
    },
    /// Properties the schema does not allow (`additionalProperties: false`).
    AdditionalProperties {
        unexpected: Vec<String>,
    },
    /// The value's type is none of these (in JSON Schema's names).
    Type {
        expected: Vec<&'static str>,
    },
    Minimum {
        limit: Value,
    },
    Maximum {
        limit: Value,
    },
    ExclusiveMinimum {
        limit: Value,
    },
    ExclusiveMaximum {
        limit: Value,
    },
    MinLength {
        limit: u64,
    },
    MaxLength {
        limit: u64,
    },
    MinItems {
        limit: u64,
    },
    MaxItems {
        limit: u64,
    },
    /// Not one of the schema's `enum` values (the array, as the schema gives it).
    Enum {
        options: Value,
    },
    /// Not the schema's `const`.
    Constant {
        expected: Value,
    },
    /// A string that does not match the schema's `pattern` (only the `jsonschema`
    /// feature checks patterns).
    #[cfg_attr(not(feature = "jsonschema"), allow(dead_code))]
    Pattern {
        pattern: String,
    },
    /// A value not of the schema's `format`, where the dialect asserts formats (only the
    /// `jsonschema` feature).
    #[cfg_attr(not(feature = "jsonschema"), allow(dead_code))]
    Format {
        format: String,
    },
    /// Any other rule, by its keyword (`anyOf`, `oneOf`, `not`, `uniqueItems`, …).
    Other {
        keyword: String,
    },
}

/// One broken rule: where (a JSON pointer into the checked value), what, and the value
/// there.
#[derive(Debug)]
pub(crate) struct Violation<'v> {
    pub(crate) pointer: String,
    pub(crate) kind: Kind,
    pub(crate) instance: &'v Value,
}

/// Why a schema cannot be checked here.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unsupported {
    /// Where in the schema, as a JSON pointer.
    pub(crate) at: String,
    pub(crate) what: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.at.is_empty() { "/" } else { &self.at };
        write!(f, "{} (at `{at}`)", self.what)
    }
}

/// A compiled schema.
#[derive(Debug)]
pub(crate) struct Checker {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    /// `true` (anything) or `false` (nothing).
    Bool(bool),
    Rules(Box<Rules>),
}

/// The JSON types, one bit each, in `jsonschema`'s order (for messages alike).
const TYPES: [&str; 7] = [
    "null", "boolean", "integer", "number", "string", "array", "object",
];

#[derive(Debug, Default)]
struct Rules {
    reference: Option<usize>,
    /// A bit per [`TYPES`] entry; `None` for any type.
    types: Option<u8>,
    enumeration: Option<Value>,
    constant: Option<Value>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    exclusive_minimum: Option<Number>,
    exclusive_maximum: Option<Number>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    prefix_items: Vec<usize>,
    items: Option<usize>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    properties: Vec<(String, usize)>,
    /// `properties` by name, and whether each is required, for lookups.
    by_name: Vec<(String, usize, bool)>,
    required: Vec<String>,
    /// How many of `required` are in `properties`; the others.
    required_properties: usize,
    required_elsewhere: Vec<String>,
    /// `patternProperties`, of the patterns schemars gives integer-keyed maps.
    patterns: Vec<(KeyPattern, usize)>,
    additional: Option<usize>,
    /// `additionalProperties` is `false` itself, so the properties it refuses are listed
    /// as one violation (through a `$ref`, each is refused where it is, as in jsonschema).
    additional_false: bool,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    all_of: Vec<usize>,
    any_of: Vec<usize>,
    one_of: Vec<usize>,
    not: Option<usize>,
}

/// The `patternProperties` patterns this checker reads: the two schemars gives maps keyed
/// by integers. Any other pattern needs the `jsonschema` feature.
#[derive(Debug, Clone, Copy)]
enum KeyPattern {
    /// `^\d+$`: decimal digits.
    Unsigned,
    /// `^-?\d+$`: decimal digits after an optional minus.
    Signed,
}

impl KeyPattern {
    fn of(pattern: &str) -> Option<KeyPattern> {
        match pattern {
            r"^\d+$" => Some(KeyPattern::Unsigned),
            r"^-?\d+$" => Some(KeyPattern::Signed),
            _ => None,
        }
    }

    fn matches(self, name: &str) -> bool {
        let digits = match self {
            KeyPattern::Unsigned => name,
            KeyPattern::Signed => name.strip_prefix('-').unwrap_or(name),
        };
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    }
}

impl Rules {
    /// The schema of the property `name`, and whether it is required.
    fn property(&self, name: &str) -> Option<(usize, bool)> {
        let found = if self.by_name.len() <= 8 {
            self.by_name.iter().find(|(known, _, _)| known == name)
        } else {
            self.by_name
                .binary_search_by(|(known, _, _)| known.as_str().cmp(name))
                .ok()
                .map(|i| &self.by_name[i])
        };
        found.map(|(_, node, required)| (*node, *required))
    }

    /// Whether `properties` or `patternProperties` names the property `name`.
    fn names(&self, name: &str) -> bool {
        self.property(name).is_some()
            || self
                .patterns
                .iter()
                .any(|(pattern, _)| pattern.matches(name))
    }

    /// Fills the lookups from `properties` and `required`, once they are read.
    fn index(&mut self) {
        self.by_name = self
            .properties
            .iter()
            .map(|(name, node)| (name.clone(), *node, self.required.contains(name)))
            .collect();
        self.by_name.sort_by(|a, b| a.0.cmp(&b.0));
        self.by_name.dedup_by(|a, b| a.0 == b.0);
        self.required_properties = self.by_name.iter().filter(|(_, _, r)| *r).count();
        let mut elsewhere: Vec<String> = self
            .required
            .iter()
            .filter(|name| !self.properties.iter().any(|(known, _)| known == *name))
            .cloned()
            .collect();
        elsewhere.sort();
        elsewhere.dedup();
        self.required_elsewhere = elsewhere;
    }
}

/// Keywords that assert nothing: read past.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$anchor",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
    "$vocabulary",
];

impl Checker {
    /// Compiles `schema`; refuses one that uses a keyword this checker does not know.
    pub(crate) fn new(schema: &Value) -> Result<Checker, Unsupported> {
        if let Some(dialect) = schema.get("$schema").and_then(Value::as_str)
            && !dialect.contains("2020-12")
        {
            return Err(Unsupported {
                at: "/$schema".to_owned(),
                what: format!("the dialect `{dialect}` (only JSON Schema 2020-12 is checked)"),
            });
        }
        let mut compiler = Compiler {
            root: schema,
            nodes: Vec::new(),
            places: Vec::new(),
            by_pointer: HashMap::new(),
        };
        compiler.compile(schema, String::new())?;
        compiler.refuse_cycles()?;
        Ok(Checker {
            nodes: compiler.nodes,
        })
    }

    /// Whether `value` passes.
    pub(crate) fn is_valid(&self, value: &Value) -> bool {
        self.valid(0, value)
    }

    /// Every rule `value` breaks, in the order the schema's keywords are checked.
    pub(crate) fn violations<'v>(&self, value: &'v Value) -> Vec<Violation<'v>> {
        let mut out = Vec::new();
        self.collect(0, value, &mut String::new(), &mut out);
        out
    }

    fn valid(&self, node: usize, value: &Value) -> bool {
        match &self.nodes[node] {
            Node::Bool(b) => *b,
            Node::Rules(rules) => {
                let mut none = Vec::new();
                self.check(rules, value, &mut String::new(), &mut none, true)
            }
        }
    }

    fn collect<'v>(
        &self,
        node: usize,
        value: &'v Value,
        pointer: &mut String,
        out: &mut Vec<Violation<'v>>,
    ) {
        match &self.nodes[node] {
            Node::Bool(true) => {}
            Node::Bool(false) => out.push(Violation {
                pointer: pointer.clone(),
                kind: Kind::Other {
                    keyword: "falseSchema".to_owned(),
                },
                instance: value,
            }),
            Node::Rules(rules) => {
                self.check(rules, value, pointer, out, false);
            }
        }
    }

    /// Checks `value` against `rules`; with `quick`, stops at the first broken rule and
    /// records nothing (the answer is the return value).
    fn check<'v>(
        &self,
        rules: &Rules,
        value: &'v Value,
        pointer: &mut String,
        out: &mut Vec<Violation<'v>>,
        quick: bool,
    ) -> bool {
        let mut ok = true;
        macro_rules! broke {
            ($kind:expr) => {{
                if quick {
                    return false;
                }
                ok = false;
                out.push(Violation {
                    pointer: pointer.clone(),
                    kind: $kind,
                    instance: value,
                });
            }};
        }
        if let Some(node) = rules.reference {
            ok &= self.descend(node, value, None, pointer, out, quick);
            if quick && !ok {
                return false;
            }
        }
        if let Some(types) = rules.types
            && types & type_bits(value) == 0
        {
            broke!(Kind::Type {
                expected: TYPES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| types & (1 << i) != 0)
                    .map(|(_, t)| *t)
                    .collect(),
            });
        }
        if let Some(options) = &rules.enumeration
            && !options
                .as_array()
                .is_some_and(|o| o.iter().any(|option| equal(option, value)))
        {
            broke!(Kind::Enum {
                options: options.clone()
            });
        }
        if let Some(expected) = &rules.constant
            && !equal(expected, value)
        {
            broke!(Kind::Constant {
                expected: expected.clone()
            });
        }
        match value {
            Value::Number(n) => {
                use std::cmp::Ordering::{Greater, Less};
                if let Some(limit) = &rules.minimum
                    && compare(n, limit) == Less
                {
                    broke!(Kind::Minimum {
                        limit: Value::Number(limit.clone())
                    });
                }
                if let Some(limit) = &rules.maximum
                    && compare(n, limit) == Greater
                {
                    broke!(Kind::Maximum {
                        limit: Value::Number(limit.clone())
                    });
                }
                if let Some(limit) = &rules.exclusive_minimum
                    && compare(n, limit) != Greater
                {
                    broke!(Kind::ExclusiveMinimum {
                        limit: Value::Number(limit.clone())
                    });
                }
                if let Some(limit) = &rules.exclusive_maximum
                    && compare(n, limit) != Less
                {
                    broke!(Kind::ExclusiveMaximum {
                        limit: Value::Number(limit.clone())
                    });
                }
            }
            Value::String(s) if rules.min_length.is_some() || rules.max_length.is_some() => {
                let chars = s.chars().count() as u64;
                let (below, above) = out_of(chars, rules.min_length, rules.max_length);
                if let Some(limit) = below {
                    broke!(Kind::MinLength { limit });
                }
                if let Some(limit) = above {
                    broke!(Kind::MaxLength { limit });
                }
            }
            Value::Array(items) => {
                let (below, above) = out_of(items.len() as u64, rules.min_items, rules.max_items);
                if let Some(limit) = below {
                    broke!(Kind::MinItems { limit });
                }
                if let Some(limit) = above {
                    broke!(Kind::MaxItems { limit });
                }
                if rules.unique_items
                    && items
                        .iter()
                        .enumerate()
                        .any(|(i, a)| items[..i].iter().any(|b| equal(a, b)))
                {
                    broke!(Kind::Other {
                        keyword: "uniqueItems".to_owned()
                    });
                }
                for (i, item) in items.iter().enumerate() {
                    let node = match rules.prefix_items.get(i) {
                        Some(&node) => node,
                        None => match rules.items {
                            Some(node) => node,
                            None => continue,
                        },
                    };
                    // The passing path names no place: the item's index is written
                    // only when its failures are collected.
                    if quick {
                        if !self.valid(node, item) {
                            return false;
                        }
                        continue;
                    }
                    ok &= self.descend(node, item, Some(&i.to_string()), pointer, out, quick);
                }
            }
            Value::Object(map) if quick && !self.object_valid(rules, map) => return false,
            Value::Object(_) if quick => {}
            // The whole object's rules, every broken one recorded (`quick` is false here).
            Value::Object(map) => {
                let (below, above) =
                    out_of(map.len() as u64, rules.min_properties, rules.max_properties);
                if below.is_some() {
                    broke!(Kind::Other {
                        keyword: "minProperties".to_owned()
                    });
                }
                if above.is_some() {
                    broke!(Kind::Other {
                        keyword: "maxProperties".to_owned()
                    });
                }
                for property in &rules.required {
                    if !map.contains_key(property) {
                        broke!(Kind::Required {
                            property: property.clone()
                        });
                    }
                }
                for (name, node) in &rules.properties {
                    if let Some(item) = map.get(name) {
                        ok &= self.descend(*node, item, Some(name), pointer, out, false);
                    }
                }
                for (pattern, node) in &rules.patterns {
                    for (name, item) in map.iter().filter(|(name, _)| pattern.matches(name)) {
                        ok &= self.descend(*node, item, Some(name), pointer, out, false);
                    }
                }
                if let Some(node) = rules.additional {
                    ok &= self.additional(rules, node, map, value, pointer, out);
                }
            }
            _ => {}
        }
        for &node in &rules.all_of {
            ok &= self.descend(node, value, None, pointer, out, quick);
            if quick && !ok {
                return false;
            }
        }
        if !rules.any_of.is_empty() && !rules.any_of.iter().any(|&n| self.valid(n, value)) {
            broke!(Kind::Other {
                keyword: "anyOf".to_owned()
            });
        }
        if !rules.one_of.is_empty()
            && rules
                .one_of
                .iter()
                .filter(|&&n| self.valid(n, value))
                .count()
                != 1
        {
            broke!(Kind::Other {
                keyword: "oneOf".to_owned()
            });
        }
        if let Some(node) = rules.not
            && self.valid(node, value)
        {
            broke!(Kind::Other {
                keyword: "not".to_owned()
            });
        }
        ok
    }

    /// Whether `map` passes the object rules: one pass over its entries, each property's
    /// schema found by name, the required ones counted as they are met (a map's keys are
    /// distinct). The publish's path: most documents pass.
    fn object_valid(&self, rules: &Rules, map: &Map<String, Value>) -> bool {
        if out_of(map.len() as u64, rules.min_properties, rules.max_properties) != (None, None) {
            return false;
        }
        let mut required_met = 0;
        for (name, item) in map {
            let mut named = false;
            if let Some((node, required)) = rules.property(name) {
                named = true;
                required_met += usize::from(required);
                if !self.valid(node, item) {
                    return false;
                }
            }
            for (pattern, node) in &rules.patterns {
                if pattern.matches(name) {
                    named = true;
                    if !self.valid(*node, item) {
                        return false;
                    }
                }
            }
            if !named
                && let Some(node) = rules.additional
                && !self.valid(node, item)
            {
                return false;
            }
        }
        required_met == rules.required_properties
            && rules
                .required_elsewhere
                .iter()
                .all(|name| map.contains_key(name))
    }

    /// Records where the properties that neither `properties` nor `patternProperties`
    /// name break `node`: with `additionalProperties: false`, one violation listing them
    /// all. (A passing value's path is [`object_valid`](Checker::object_valid).)
    fn additional<'v>(
        &self,
        rules: &Rules,
        node: usize,
        map: &'v Map<String, Value>,
        value: &'v Value,
        pointer: &mut String,
        out: &mut Vec<Violation<'v>>,
    ) -> bool {
        let extra = map.iter().filter(|(name, _)| !rules.names(name));
        if rules.additional_false {
            let unexpected: Vec<String> = extra.map(|(name, _)| name.clone()).collect();
            if unexpected.is_empty() {
                return true;
            }
            out.push(Violation {
                pointer: pointer.clone(),
                kind: Kind::AdditionalProperties { unexpected },
                instance: value,
            });
            return false;
        }
        let mut ok = true;
        for (name, item) in extra {
            ok &= self.descend(node, item, Some(name), pointer, out, false);
        }
        ok
    }

    /// Checks `value` against `node`: found at `segment` below `pointer`, or at `pointer`
    /// itself (`$ref`, `allOf`) without one.
    fn descend<'v>(
        &self,
        node: usize,
        value: &'v Value,
        segment: Option<&str>,
        pointer: &mut String,
        out: &mut Vec<Violation<'v>>,
        quick: bool,
    ) -> bool {
        if quick {
            return self.valid(node, value);
        }
        let len = pointer.len();
        if let Some(segment) = segment {
            push_pointer_segment(pointer, segment);
        }
        let before = out.len();
        self.collect(node, value, pointer, out);
        pointer.truncate(len);
        out.len() == before
    }
}

/// The bits of [`TYPES`] `value` has: an integer is a number too, and so is a float
/// without a fraction an integer.
fn type_bits(value: &Value) -> u8 {
    match value {
        Value::Null => 1,
        Value::Bool(_) => 1 << 1,
        Value::Number(n) => {
            let integer = n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0);
            if integer { (1 << 2) | (1 << 3) } else { 1 << 3 }
        }
        Value::String(_) => 1 << 4,
        Value::Array(_) => 1 << 5,
        Value::Object(_) => 1 << 6,
    }
}

/// JSON equality: numbers by value (`1` equals `1.0`), objects regardless of order.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == std::cmp::Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// Compares two numbers exactly, as `jsonschema` does (`9007199254740993` is above
/// `9007199254740992.0`, though both are the same `f64`).
fn compare(a: &Number, b: &Number) -> std::cmp::Ordering {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    let float = |n: &Number| n.as_f64().unwrap_or(f64::NAN);
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => compare_integer(x, float(b)),
        (None, Some(y)) => compare_integer(y, float(a)).reverse(),
        (None, None) => float(a)
            .partial_cmp(&float(b))
            .unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Compares an integer with a float exactly: rounding `x` to the nearest `f64` keeps its
/// side of `y`, so only a tie needs a second look, and then `y` is an integer within
/// `i128`.
fn compare_integer(x: i128, y: f64) -> std::cmp::Ordering {
    match (x as f64).partial_cmp(&y) {
        Some(std::cmp::Ordering::Equal) => x.cmp(&(y as i128)),
        Some(order) => order,
        None => std::cmp::Ordering::Equal,
    }
}

struct Compiler<'s> {
    root: &'s Value,
    nodes: Vec<Node>,
    /// Where in the schema each node was found, as a JSON pointer.
    places: Vec<String>,
    /// Schemas compiled from a `$ref`, by the pointer they were found at.
    by_pointer: HashMap<String, usize>,
}

impl<'s> Compiler<'s> {
    /// Compiles `schema`, found at `at` in the root, into a new node; returns its index.
    fn compile(&mut self, schema: &'s Value, at: String) -> Result<usize, Unsupported> {
        // A schema that is only a reference (and annotations) is the schema it refers to:
        // no node of its own to pass through on every value.
        if let Some(target) = only_reference(schema) {
            return self.reference(target, &format!("{at}/$ref"));
        }
        let index = self.nodes.len();
        self.nodes.push(Node::Bool(true));
        self.places.push(at.clone());
        let node = match schema {
            Value::Bool(b) => Node::Bool(*b),
            Value::Object(map) => Node::Rules(Box::new(self.rules(map, &at)?)),
            _ => {
                return Err(Unsupported {
                    at,
                    what: "a schema that is neither an object nor a boolean".to_owned(),
                });
            }
        };
        self.nodes[index] = node;
        Ok(index)
    }

    fn rules(&mut self, map: &'s Map<String, Value>, at: &str) -> Result<Rules, Unsupported> {
        let mut rules = Rules::default();
        for (keyword, value) in map {
            let here = format!("{at}/{keyword}");
            let bad = |what: &str| Unsupported {
                at: here.clone(),
                what: format!("`{keyword}` {what}"),
            };
            match keyword.as_str() {
                "$id" if !at.is_empty() => {
                    return Err(Unsupported {
                        at: here,
                        what: "the keyword `$id` below the root (a schema resource of its own, \
                               which its references resolve against), which eac's built-in \
                               checker does not check"
                            .to_owned(),
                    });
                }
                k if ANNOTATIONS.contains(&k) || k.starts_with("x-") => {}
                "$ref" => {
                    let target = value.as_str().ok_or_else(|| bad("is not a string"))?;
                    rules.reference = Some(self.reference(target, &here)?);
                }
                "type" => {
                    let names: Vec<&str> = match value {
                        Value::String(s) => vec![s.as_str()],
                        Value::Array(items) => items
                            .iter()
                            .map(|t| t.as_str().ok_or_else(|| bad("lists a non-string")))
                            .collect::<Result<_, _>>()?,
                        _ => return Err(bad("is neither a string nor a list")),
                    };
                    if names.is_empty() {
                        return Err(bad("is an empty list"));
                    }
                    let mut bits = 0u8;
                    for name in names {
                        let i = TYPES
                            .iter()
                            .position(|t| *t == name)
                            .ok_or_else(|| bad(&format!("names an unknown type `{name}`")))?;
                        bits |= 1 << i;
                    }
                    rules.types = Some(bits);
                }
                "enum" => {
                    if !value.is_array() {
                        return Err(bad("is not a list"));
                    }
                    rules.enumeration = Some(value.clone());
                }
                "const" => rules.constant = Some(value.clone()),
                "minimum" => {
                    rules.minimum = Some(number(value).ok_or_else(|| bad("is not a number"))?)
                }
                "maximum" => {
                    rules.maximum = Some(number(value).ok_or_else(|| bad("is not a number"))?)
                }
                "exclusiveMinimum" => {
                    rules.exclusive_minimum =
                        Some(number(value).ok_or_else(|| bad("is not a number"))?);
                }
                "exclusiveMaximum" => {
                    rules.exclusive_maximum =
                        Some(number(value).ok_or_else(|| bad("is not a number"))?);
                }
                "minLength" => {
                    rules.min_length = Some(count(value).ok_or_else(|| bad("is not a count"))?)
                }
                "maxLength" => {
                    rules.max_length = Some(count(value).ok_or_else(|| bad("is not a count"))?)
                }
                "minItems" => {
                    rules.min_items = Some(count(value).ok_or_else(|| bad("is not a count"))?)
                }
                "maxItems" => {
                    rules.max_items = Some(count(value).ok_or_else(|| bad("is not a count"))?)
                }
                "minProperties" => {
                    rules.min_properties = Some(count(value).ok_or_else(|| bad("is not a count"))?);
                }
                "maxProperties" => {
                    rules.max_properties = Some(count(value).ok_or_else(|| bad("is not a count"))?);
                }
                "uniqueItems" => {
                    rules.unique_items = value.as_bool().ok_or_else(|| bad("is not a boolean"))?;
                }
                "items" => rules.items = Some(self.compile(value, here)?),
                "prefixItems" => {
                    let items = value.as_array().ok_or_else(|| bad("is not a list"))?;
                    for (i, item) in items.iter().enumerate() {
                        let node = self.compile(item, format!("{here}/{i}"))?;
                        rules.prefix_items.push(node);
                    }
                }
                "properties" => {
                    let properties = value.as_object().ok_or_else(|| bad("is not a map"))?;
                    for (name, schema) in properties {
                        let node = self.compile(schema, below(&here, name))?;
                        rules.properties.push((name.clone(), node));
                    }
                }
                "required" => {
                    let names = value.as_array().ok_or_else(|| bad("is not a list"))?;
                    for name in names {
                        let name = name.as_str().ok_or_else(|| bad("lists a non-string"))?;
                        rules.required.push(name.to_owned());
                    }
                }
                "additionalProperties" => {
                    rules.additional_false = *value == Value::Bool(false);
                    rules.additional = Some(self.compile(value, here)?);
                }
                "patternProperties" => {
                    let patterns = value.as_object().ok_or_else(|| bad("is not a map"))?;
                    for (pattern, schema) in patterns {
                        let key = KeyPattern::of(pattern).ok_or_else(|| Unsupported {
                            at: here.clone(),
                            what: format!(
                                "the pattern `{pattern}` in `patternProperties`, which eac's \
                                 built-in checker does not check (it reads the two schemars \
                                 gives integer keys)"
                            ),
                        })?;
                        let node = self.compile(schema, below(&here, pattern))?;
                        rules.patterns.push((key, node));
                    }
                }
                "allOf" | "anyOf" | "oneOf" => {
                    let schemas = value.as_array().ok_or_else(|| bad("is not a list"))?;
                    if schemas.is_empty() {
                        return Err(bad("is an empty list"));
                    }
                    let mut nodes = Vec::with_capacity(schemas.len());
                    for (i, schema) in schemas.iter().enumerate() {
                        nodes.push(self.compile(schema, format!("{here}/{i}"))?);
                    }
                    match keyword.as_str() {
                        "allOf" => rules.all_of = nodes,
                        "anyOf" => rules.any_of = nodes,
                        _ => rules.one_of = nodes,
                    }
                }
                "not" => rules.not = Some(self.compile(value, here)?),
                _ => {
                    return Err(Unsupported {
                        at: here,
                        what: format!(
                            "the keyword `{keyword}`, which eac's built-in checker does not \
                             check"
                        ),
                    });
                }
            }
        }
        rules.index();
        Ok(rules)
    }

    /// Refuses a schema that, through `$ref` and the applicators that check the same value
    /// (`allOf`, `anyOf`, `oneOf`, `not`), comes back to itself without descending into
    /// the value: checking it would recurse until the stack overflows.
    fn refuse_cycles(&self) -> Result<(), Unsupported> {
        let mut state = vec![Visit::New; self.nodes.len()];
        (0..self.nodes.len()).try_for_each(|node| self.visit(node, &mut state))
    }

    fn visit(&self, node: usize, state: &mut [Visit]) -> Result<(), Unsupported> {
        match state[node] {
            Visit::Done => return Ok(()),
            Visit::Open => {
                return Err(Unsupported {
                    at: self.places[node].clone(),
                    what: "a schema that applies itself to the same value again (through \
                           `$ref`, `allOf`, `anyOf`, `oneOf` or `not`), which never ends"
                        .to_owned(),
                });
            }
            Visit::New => {}
        }
        state[node] = Visit::Open;
        if let Node::Rules(rules) = &self.nodes[node] {
            let same_value = (rules.reference.iter())
                .chain(&rules.all_of)
                .chain(&rules.any_of)
                .chain(&rules.one_of)
                .chain(&rules.not);
            for &next in same_value {
                self.visit(next, state)?;
            }
        }
        state[node] = Visit::Done;
        Ok(())
    }

    /// The node of a `$ref` within the schema (`#/$defs/Name`), compiled once; a chain of
    /// schemas that are only references is followed to the first that is more.
    fn reference(&mut self, target: &str, at: &str) -> Result<usize, Unsupported> {
        let mut pointer = pointer_of(target, at)?;
        let mut through = Vec::new();
        loop {
            if let Some(&node) = self.by_pointer.get(&pointer) {
                for alias in through {
                    self.by_pointer.insert(alias, node);
                }
                return Ok(node);
            }
            let schema = self.root.pointer(&pointer).ok_or_else(|| Unsupported {
                at: at.to_owned(),
                what: format!("the reference `{target}`, which points at nothing"),
            })?;
            if let Some(next) = only_reference(schema) {
                if through.contains(&pointer) {
                    return Err(Unsupported {
                        at: at.to_owned(),
                        what: format!("the reference `{target}`, a cycle of references only"),
                    });
                }
                through.push(pointer);
                pointer = pointer_of(next, at)?;
                continue;
            }
            // Registered before compiling, so that a recursive reference finds it.
            let index = self.nodes.len();
            for alias in through {
                self.by_pointer.insert(alias, index);
            }
            self.by_pointer.insert(pointer.clone(), index);
            let compiled = self.compile(schema, pointer)?;
            debug_assert_eq!(compiled, index);
            return Ok(index);
        }
    }
}

/// A node's place in [`Compiler::refuse_cycles`]'s walk.
#[derive(Debug, Clone, Copy)]
enum Visit {
    New,
    /// On the path being walked.
    Open,
    Done,
}

/// The target of a schema that is only a `$ref` (with annotations beside it; not `$id`,
/// which changes what the `$ref` resolves against).
fn only_reference(schema: &Value) -> Option<&str> {
    let map = schema.as_object()?;
    let target = map.get("$ref")?.as_str()?;
    map.keys()
        .all(|k| {
            k == "$ref" || (k != "$id" && ANNOTATIONS.contains(&k.as_str())) || k.starts_with("x-")
        })
        .then_some(target)
}

/// The JSON pointer a `$ref` within the schema names (`#/$defs/A%20B` → `/$defs/A B`).
fn pointer_of(target: &str, at: &str) -> Result<String, Unsupported> {
    let refused = |what: &str| Unsupported {
        at: at.to_owned(),
        what: format!("the reference `{target}`{what}"),
    };
    let pointer = target
        .strip_prefix('#')
        .ok_or_else(|| refused(" outside the schema"))?;
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(refused(
            ", to a named anchor (`$anchor`), which eac's built-in checker does not resolve",
        ));
    }
    percent_decode(pointer).ok_or_else(|| {
        refused(", whose `%` escapes do not decode to UTF-8 (each is `%` and two hex digits)")
    })
}

/// The bounds a count breaks: `min` when it is below it, `max` when above (both, when
/// `min` exceeds `max`).
fn out_of(count: u64, min: Option<u64>, max: Option<u64>) -> (Option<u64>, Option<u64>) {
    (min.filter(|&m| count < m), max.filter(|&m| count > m))
}

fn number(value: &Value) -> Option<Number> {
    match value {
        Value::Number(n) => Some(n.clone()),
        _ => None,
    }
}

/// A non-negative integer (`2` or `2.0`).
fn count(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

/// The pointer of the schema at `name` below the pointer `at`.
fn below(at: &str, name: &str) -> String {
    let mut pointer = at.to_owned();
    push_pointer_segment(&mut pointer, name);
    pointer
}

/// `%XX` escapes of a URI fragment decoded (`#/$defs/A%20B`); `None` for a `%` without
/// two hex digits after it, or escapes that decode to something other than UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let digit = |b: u8| char::from(b).to_digit(16);
            out.push((digit(hex[0])? * 16 + digit(hex[1])?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod review_tests;
