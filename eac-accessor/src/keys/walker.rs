//! Reading one section's JSON Schema: the fields it owns at a level, and the JSON
//! types it allows there (`$ref`s resolved, combinators flattened, depth bounded).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde_json::Value;

/// The schema of anything at all.
static ANY: Value = Value::Bool(true);

/// The JSON types a schema allows at one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Types {
    pub(crate) any: bool,
    pub(crate) string: bool,
    pub(crate) integer: bool,
    pub(crate) number: bool,
    pub(crate) boolean: bool,
    pub(crate) array: bool,
    pub(crate) object: bool,
    pub(crate) null: bool,
}

impl Types {
    fn add(&mut self, name: &str) {
        match name {
            "string" => self.string = true,
            "integer" => self.integer = true,
            "number" => self.number = true,
            "boolean" => self.boolean = true,
            "array" => self.array = true,
            "object" => self.object = true,
            "null" => self.null = true,
            _ => self.any = true,
        }
    }

    fn add_value(&mut self, value: &Value) {
        self.add(schema_type(value));
    }
}

/// The levels of the schemas met in one walk, by the addresses of their nodes.
#[derive(Default)]
pub(super) struct Levels<'s> {
    read: RefCell<HashMap<Vec<*const Value>, Rc<Level<'s>>>>,
    /// The level asked for last: the entries of a map field ask for one level in turn,
    /// each without building a key or hashing it.
    last: RefCell<Option<(Vec<*const Value>, Rc<Level<'s>>)>>,
}

impl<'s> Levels<'s> {
    /// The level of `nodes`, read now or earlier in this walk.
    pub(super) fn get(&self, walker: Walker<'s>, nodes: &[&'s Value]) -> Rc<Level<'s>> {
        if let Some((key, level)) = &*self.last.borrow()
            && key.len() == nodes.len()
            && key.iter().zip(nodes).all(|(k, n)| std::ptr::eq(*k, *n))
        {
            return Rc::clone(level);
        }
        let key: Vec<*const Value> = nodes.iter().map(|n| std::ptr::from_ref(*n)).collect();
        let level = Rc::clone(
            self.read
                .borrow_mut()
                .entry(key.clone())
                .or_insert_with(|| Rc::new(Level::new(walker, nodes))),
        );
        *self.last.borrow_mut() = Some((key, Rc::clone(&level)));
        level
    }
}

/// What a set of schema nodes says about the keys of a value they describe, read once
/// for every value they describe (the thousand entries of a map field share one).
pub(super) struct Level<'s> {
    /// Owns every key below (says nothing about them).
    pub(super) open: bool,
    /// The schemas of each named field, sorted by name.
    pub(super) fields: Vec<(&'s str, Rc<[&'s Value]>)>,
    /// The schemas of any other key (`additionalProperties`); empty: no other key.
    pub(super) extra: Rc<[&'s Value]>,
    /// The schemas of a list's items.
    pub(super) items: Rc<[&'s Value]>,
}

impl<'s> Level<'s> {
    pub(super) fn new(walker: Walker<'s>, nodes: &[&'s Value]) -> Level<'s> {
        let mut fields: BTreeMap<&'s str, Vec<&'s Value>> = BTreeMap::new();
        let mut extra = Vec::new();
        let branches = walker.branches(nodes);
        for branch in branches.iter().filter(|b| Walker::can_be_object(b)) {
            let Value::Object(map) = branch else {
                extra.push(&ANY);
                continue;
            };
            let properties = map.get("properties").and_then(Value::as_object);
            for (field, schema) in properties.into_iter().flatten() {
                fields.entry(field.as_str()).or_default().push(schema);
            }
            match map.get("additionalProperties") {
                Some(Value::Bool(false)) => {}
                Some(schema) => extra.push(schema),
                None if properties.is_none() => extra.push(&ANY),
                None => {}
            }
            if map.contains_key("patternProperties") {
                extra.push(&ANY);
            }
        }
        Level {
            open: walker.is_open(nodes),
            fields: fields.into_iter().map(|(k, v)| (k, v.into())).collect(),
            extra: extra.into(),
            items: walker.items(nodes).into(),
        }
    }

    /// The schemas of the key `key`, if any schema here owns it.
    pub(super) fn child(&self, key: &str) -> Option<&[&'s Value]> {
        // A struct's handful of fields: their lengths first, then the bytes of one or two.
        let found = if self.fields.len() <= 8 {
            self.fields
                .iter()
                .position(|(name, _)| name.len() == key.len() && *name == key)
        } else {
            self.fields
                .binary_search_by(|(name, _)| (*name).cmp(key))
                .ok()
        };
        match found {
            Some(i) => Some(&self.fields[i].1),
            None if !self.extra.is_empty() => Some(&self.extra),
            None => None,
        }
    }
}

/// Reads one section's schema (`$ref`s resolved against its root, `allOf` / `anyOf` /
/// `oneOf` flattened into branches).
#[derive(Clone, Copy)]
pub(super) struct Walker<'s> {
    pub(super) root: &'s Value,
}

/// How deep `$ref`s and combinators are followed: schemas of recursive types end here.
const MAX_DEPTH: usize = 32;

impl<'s> Walker<'s> {
    /// The branches `nodes` stand for, each a schema without combinators or `$ref`.
    pub(super) fn branches(&self, nodes: &[&'s Value]) -> Vec<&'s Value> {
        let mut out = Vec::new();
        for node in nodes {
            self.expand(node, 0, &mut out);
        }
        out
    }

    fn expand(&self, node: &'s Value, depth: usize, out: &mut Vec<&'s Value>) {
        if depth > MAX_DEPTH {
            out.push(&ANY);
            return;
        }
        let Value::Object(map) = node else {
            out.push(node);
            return;
        };
        let mut combined = false;
        if let Some(Value::String(reference)) = map.get("$ref") {
            combined = true;
            match reference
                .strip_prefix('#')
                .and_then(|p| pointer(self.root, p))
            {
                Some(target) => self.expand(target, depth + 1, out),
                None => out.push(&ANY),
            }
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(list)) = map.get(keyword) {
                combined = true;
                for branch in list {
                    self.expand(branch, depth + 1, out);
                }
            }
        }
        let describes = [
            "type",
            "properties",
            "additionalProperties",
            "patternProperties",
            "items",
            "enum",
            "const",
        ]
        .iter()
        .any(|k| map.contains_key(*k));
        if describes || !combined {
            out.push(node);
        }
    }

    /// Whether a branch can be a map at all.
    pub(super) fn can_be_object(branch: &Value) -> bool {
        match branch {
            Value::Bool(b) => *b,
            Value::Object(map) => match map.get("type") {
                Some(Value::String(t)) => t == "object",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
                _ => !map.contains_key("enum") && !map.contains_key("const"),
            },
            _ => false,
        }
    }

    /// Whether the schema owns every key below it (says nothing about them).
    pub(super) fn is_open(&self, nodes: &[&'s Value]) -> bool {
        self.branches(nodes).iter().any(|b| match b {
            Value::Bool(true) => true,
            Value::Object(map) => {
                Self::can_be_object(b)
                    && !map.contains_key("properties")
                    && !map.contains_key("additionalProperties")
                    && !map.contains_key("items")
                    && !map.contains_key("prefixItems")
            }
            _ => false,
        })
    }

    /// The schemas of the key `key` below `nodes`, matching field names in any case; the name as the
    /// schema spells it (or `key` lower-cased under a map).
    pub(super) fn child_ignoring_case(
        &self,
        nodes: &[&'s Value],
        key: &str,
    ) -> Option<(String, Vec<&'s Value>)> {
        let level = Level::new(*self, nodes);
        let mut matching = level
            .fields
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(key));
        match matching.next() {
            Some((name, schemas)) => {
                let mut all = schemas.to_vec();
                matching.for_each(|(_, more)| all.extend_from_slice(more));
                Some(((*name).to_owned(), all))
            }
            None if !level.extra.is_empty() => {
                Some((key.to_ascii_lowercase(), level.extra.to_vec()))
            }
            None => None,
        }
    }

    /// The schemas of a list's items below `nodes`.
    pub(super) fn items(&self, nodes: &[&'s Value]) -> Vec<&'s Value> {
        let mut out = Vec::new();
        for branch in self.branches(nodes) {
            let Value::Object(map) = branch else { continue };
            match map.get("items") {
                Some(Value::Array(tuple)) => out.extend(tuple),
                Some(schema) => out.push(schema),
                None => {}
            }
            if let Some(Value::Array(tuple)) = map.get("prefixItems") {
                out.extend(tuple);
            }
        }
        if out.is_empty() {
            out.push(&ANY);
        }
        out
    }

    /// The types allowed by `nodes`.
    pub(super) fn types(&self, nodes: &[&'s Value]) -> Types {
        let mut types = Types::default();
        for branch in self.branches(nodes) {
            match branch {
                Value::Object(map) => {
                    if let Some(t) = map.get("type") {
                        match t {
                            Value::String(name) => types.add(name),
                            Value::Array(names) => names
                                .iter()
                                .filter_map(Value::as_str)
                                .for_each(|n| types.add(n)),
                            _ => types.any = true,
                        }
                    } else if let Some(Value::Array(values)) = map.get("enum") {
                        values.iter().for_each(|v| types.add_value(v));
                    } else if let Some(value) = map.get("const") {
                        types.add_value(value);
                    } else if map.contains_key("properties")
                        || map.contains_key("additionalProperties")
                    {
                        types.object = true;
                    } else {
                        types.any = true;
                    }
                }
                Value::Bool(true) => types.any = true,
                _ => {}
            }
        }
        types
    }
}

/// The JSON Schema name of `value`'s type (`"integer"` for a whole number).
pub(crate) fn schema_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// [`Value::pointer`] without its allocations: a segment is unescaped (`~1`, `~0`) only
/// when it has a `~`, which the schemas' own `$ref`s (`/$defs/Name`) never do.
fn pointer<'v>(root: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(root);
    }
    let mut target = root;
    for segment in pointer.strip_prefix('/')?.split('/') {
        let unescaped;
        let segment = if segment.contains('~') {
            unescaped = segment.replace("~1", "/").replace("~0", "~");
            unescaped.as_str()
        } else {
            segment
        };
        target = match target {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(target)
}
