//! Which keys the registered sections own, read from their JSON Schemas.
//!
//! One rule for every source: a top-level key that no section owns, or a key that no
//! field of its section owns, is unknown. A map field (`additionalProperties`), or a
//! field whose schema says nothing about its keys (`serde_json::Value`), owns every key
//! under it. Unknown keys are removed from the candidate before it is hashed, so they are
//! never stored, diffed or shown; unless allowed, each one rejects the candidate.
//!
//! The env overlay uses the same walk to map a variable onto a key, and reads the
//! schema's type there to coerce the variable's text.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::error::dotted_to_pointer;

/// A top-level key that every document may carry for editors; never configuration.
pub(crate) const SCHEMA_KEY: &str = "$schema";

/// The registered sections' keys, filled in when the accessor is built (the env overlay
/// is added to the builder before it knows every section).
pub(crate) type KeysSlot = Arc<OnceLock<Arc<Keys>>>;

/// The schema of anything at all.
static ANY: Value = Value::Bool(true);

/// One registered section, as far as keys are concerned.
#[derive(Debug, Clone)]
pub(crate) struct SectionKeys {
    pub(crate) path: &'static str,
    pub(crate) schema: Value,
    /// Unknown keys inside this section are ignored rather than rejected.
    pub(crate) allow_unknown: bool,
}

/// The keys every registered section owns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keys {
    sections: Vec<SectionKeys>,
    /// Section paths as a tree of their segments.
    tree: Tree,
    /// Unknown keys anywhere are ignored rather than rejected.
    allow_unknown: bool,
}

#[derive(Debug, Clone, Default)]
struct Tree {
    section: Option<usize>,
    children: BTreeMap<String, Tree>,
}

/// A key that no section owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unknown {
    /// The dotted key.
    pub(crate) key: String,
    /// The section it is in, if any (`None`: no section owns the table it is in).
    pub(crate) section: Option<&'static str>,
    /// The nearest known name at that level.
    pub(crate) nearest: Option<String>,
}

/// A key longer than this is shown cut short, with its length.
const SHOWN_KEY_MAX_CHARS: usize = 80;

impl Unknown {
    /// The key to show: whole, or its first characters and `…` when it is too long
    /// to print (a typo is short; a huge key is a broken or hostile document).
    pub(crate) fn shown_key(&self) -> String {
        match self.key.char_indices().nth(SHOWN_KEY_MAX_CHARS) {
            Some((end, _)) => format!("{}…", &self.key[..end]),
            None => self.key.clone(),
        }
    }

    /// What to say about it, suggestion included.
    pub(crate) fn message(&self) -> String {
        let mut message = match self.section {
            Some(section) => format!("unknown key: section `{section}` has no field of that name"),
            None => "unknown section: no registered section is at this key".to_owned(),
        };
        if self.key.chars().nth(SHOWN_KEY_MAX_CHARS).is_some() {
            let _ = write!(
                message,
                " (the key has {} characters; shown cut short)",
                self.key.chars().count()
            );
        }
        if let Some(nearest) = &self.nearest {
            let _ = write!(message, " — did you mean `{nearest}`?");
        }
        message
    }
}

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

/// Where an environment variable lands: the key as the schema spells it, and what the
/// schema says is there.
#[derive(Debug)]
pub(crate) struct KeyTarget<'k> {
    /// The key's segments, from the top of the document.
    pub(crate) path: Vec<String>,
    keys: &'k Keys,
    section_index: usize,
    nodes: Vec<&'k Value>,
}

impl<'k> KeyTarget<'k> {
    /// The types the schema allows at the key.
    pub(crate) fn types(&self) -> Types {
        self.keys.walker(self.section_index).types(&self.nodes)
    }

    /// The types the schema allows for the items of a list at the key.
    pub(crate) fn item_types(&self) -> Types {
        let walker = self.keys.walker(self.section_index);
        walker.types(&walker.items(&self.nodes))
    }
}

impl Keys {
    /// The keys of `sections`; `allow_unknown` ignores unknown keys everywhere.
    pub(crate) fn new(sections: Vec<SectionKeys>, allow_unknown: bool) -> Keys {
        let mut tree = Tree::default();
        for (i, section) in sections.iter().enumerate() {
            let mut node = &mut tree;
            for segment in section.path.split('.') {
                node = node.children.entry(segment.to_owned()).or_default();
            }
            node.section = Some(i);
        }
        Keys {
            sections,
            tree,
            allow_unknown,
        }
    }

    fn walker(&self, section: usize) -> Walker<'_> {
        Walker {
            root: &self.sections[section].schema,
        }
    }

    /// Removes from `document` every key that no section owns, and the top-level
    /// `$schema`; returns the removed keys that are not allowed.
    pub(crate) fn scope(&self, document: &mut Value) -> Vec<Unknown> {
        let mut out = Vec::new();
        if let Value::Object(map) = document {
            map.remove(SCHEMA_KEY);
            // Every entry of a map field has the same schema: read it once.
            let cache = Levels::default();
            self.scope_tree(map, &self.tree, &mut String::new(), &cache, &mut out);
        }
        out
    }

    /// `path` is the dotted key of `map`, a buffer the walk extends and restores.
    fn scope_tree<'c>(
        &'c self,
        map: &mut Map<String, Value>,
        tree: &Tree,
        path: &mut String,
        cache: &'c Levels<'c>,
        out: &mut Vec<Unknown>,
    ) {
        map.retain(|key, value| {
            let len = push_segment(path, key);
            let keep = match tree.children.get(key) {
                Some(child) => {
                    self.scope_entry(value, child, path, cache, out);
                    true
                }
                None => {
                    if !self.allow_unknown {
                        out.push(Unknown {
                            nearest: nearest(key, tree.children.keys().map(String::as_str)),
                            key: path.clone(),
                            section: None,
                        });
                    }
                    false
                }
            };
            path.truncate(len);
            keep
        });
    }

    /// Scopes the value at `path`, which the section tree reaches at `node`.
    fn scope_entry<'c>(
        &'c self,
        value: &mut Value,
        node: &Tree,
        path: &mut String,
        cache: &'c Levels<'c>,
        out: &mut Vec<Unknown>,
    ) {
        match node.section {
            Some(i) => {
                let walker = self.walker(i);
                let scope = Scope {
                    keys: self,
                    walker,
                    cache,
                    allow: self.allow_unknown || self.sections[i].allow_unknown,
                    section: self.sections[i].path,
                };
                scope.walk(value, &[walker.root], node, path, out);
            }
            None => {
                if let Value::Object(inner) = value {
                    self.scope_tree(inner, node, path, cache, out);
                }
            }
        }
    }

    /// `value`, found at dotted `key`, without what no section owns under it.
    pub(crate) fn scoped_at(&self, key: &str, value: &Value) -> Value {
        let mut document = value.clone();
        for segment in key.rsplit('.') {
            document = Value::Object(Map::from_iter([(segment.to_owned(), document)]));
        }
        self.scope(&mut document);
        document
            .pointer(&dotted_to_pointer(key))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Where the key `parts` (as an environment variable spells it: any case) lands, if
    /// a section owns it.
    pub(crate) fn target(&self, parts: &[String]) -> Option<KeyTarget<'_>> {
        let mut node = &self.tree;
        let mut path = Vec::new();
        let mut found = None;
        for (depth, part) in parts.iter().enumerate() {
            let Some((name, child)) = node
                .children
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(part))
            else {
                break;
            };
            path.push(name.clone());
            node = child;
            if let Some(i) = child.section {
                // The deepest section wins: `server.http` over `server`.
                found = Some((i, depth + 1, path.clone()));
            }
        }
        let (i, depth, mut path) = found?;
        if depth == parts.len() {
            // The section itself is not one of its keys.
            return None;
        }
        let walker = self.walker(i);
        let mut nodes = vec![walker.root];
        for part in &parts[depth..] {
            let (name, children) = walker.child_ignoring_case(&nodes, part)?;
            path.push(name);
            nodes = children;
        }
        Some(KeyTarget {
            path,
            keys: self,
            section_index: i,
            nodes,
        })
    }
}

/// The levels of the schemas met in one walk, by the addresses of their nodes.
type Levels<'s> = RefCell<HashMap<Vec<*const Value>, Rc<Level<'s>>>>;

/// What a set of schema nodes says about the keys of a value they describe, read once
/// for every value they describe (the thousand entries of a map field share one).
struct Level<'s> {
    /// Owns every key below (says nothing about them).
    open: bool,
    /// The schemas of each named field, sorted by name.
    fields: Vec<(&'s str, Rc<[&'s Value]>)>,
    /// The schemas of any other key (`additionalProperties`); empty: no other key.
    extra: Rc<[&'s Value]>,
    /// The schemas of a list's items.
    items: Rc<[&'s Value]>,
}

impl<'s> Level<'s> {
    fn new(walker: Walker<'s>, nodes: &[&'s Value]) -> Level<'s> {
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
    fn child(&self, key: &str) -> Option<Rc<[&'s Value]>> {
        match self.fields.binary_search_by(|(name, _)| (*name).cmp(key)) {
            Ok(i) => Some(Rc::clone(&self.fields[i].1)),
            Err(_) if !self.extra.is_empty() => Some(Rc::clone(&self.extra)),
            Err(_) => None,
        }
    }
}

/// Walks one section's value, removing what its schema does not own.
struct Scope<'k> {
    keys: &'k Keys,
    walker: Walker<'k>,
    /// The levels read so far in this walk.
    cache: &'k Levels<'k>,
    allow: bool,
    section: &'static str,
}

impl<'k> Scope<'k> {
    fn walk(
        &self,
        value: &mut Value,
        nodes: &[&'k Value],
        tree: &Tree,
        path: &mut String,
        out: &mut Vec<Unknown>,
    ) {
        if !matches!(value, Value::Object(_) | Value::Array(_)) {
            return; // nothing below a scalar to scope
        }
        let level = self.level(nodes);
        if level.open {
            return;
        }
        match value {
            Value::Object(map) => map.retain(|key, v| {
                let len = push_segment(path, key);
                let keep = if let Some(deeper) = tree.children.get(key) {
                    // Another registered section lives here (`server` and `server.http`).
                    self.keys.scope_entry(v, deeper, path, self.cache, out);
                    true
                } else if let Some(children) = level.child(key) {
                    self.walk(v, &children, &Tree::default(), path, out);
                    true
                } else {
                    if !self.allow {
                        let names = level.fields.iter().map(|(name, _)| *name);
                        out.push(Unknown {
                            nearest: nearest(key, names),
                            key: path.clone(),
                            section: Some(self.section),
                        });
                    }
                    false
                };
                path.truncate(len);
                keep
            }),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = push_segment(path, &i.to_string());
                    self.walk(item, &level.items, &Tree::default(), path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// The level of `nodes`, read now or earlier in this walk.
    fn level(&self, nodes: &[&'k Value]) -> Rc<Level<'k>> {
        let key: Vec<*const Value> = nodes.iter().map(|n| std::ptr::from_ref(*n)).collect();
        if let Some(level) = self.cache.borrow().get(&key) {
            return Rc::clone(level);
        }
        let level = Rc::new(Level::new(self.walker, nodes));
        self.cache.borrow_mut().insert(key, Rc::clone(&level));
        level
    }
}

/// Reads one section's schema (`$ref`s resolved against its root, `allOf` / `anyOf` /
/// `oneOf` flattened into branches).
#[derive(Clone, Copy)]
struct Walker<'s> {
    root: &'s Value,
}

/// How deep `$ref`s and combinators are followed: schemas of recursive types end here.
const MAX_DEPTH: usize = 32;

impl<'s> Walker<'s> {
    /// The branches `nodes` stand for, each a schema without combinators or `$ref`.
    fn branches(&self, nodes: &[&'s Value]) -> Vec<&'s Value> {
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
    fn can_be_object(branch: &Value) -> bool {
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
    fn is_open(&self, nodes: &[&'s Value]) -> bool {
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
    fn child_ignoring_case(
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
    fn items(&self, nodes: &[&'s Value]) -> Vec<&'s Value> {
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
    fn types(&self, nodes: &[&'s Value]) -> Types {
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

/// Appends the segment `key` to the dotted `path`; returns the length to truncate to.
fn push_segment(path: &mut String, key: &str) -> usize {
    let len = path.len();
    if len > 0 {
        path.push('.');
    }
    path.push_str(key);
    len
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

/// Keys longer than this get no suggestion: no field name is that long, and the search
/// must cost little for a key of any size (a 2 MB key in a file or a remote document).
const SUGGEST_MAX_CHARS: usize = 64;

/// The name among `names` closest to `key`, if one is close enough to be a typo.
pub(crate) fn nearest<'a>(key: &str, names: impl Iterator<Item = &'a str>) -> Option<String> {
    if key.chars().nth(SUGGEST_MAX_CHARS).is_some() {
        return None;
    }
    let key: Vec<char> = key.to_lowercase().chars().collect();
    names
        .filter(|name| name.chars().nth(SUGGEST_MAX_CHARS).is_none())
        .filter_map(|name| {
            let lower: Vec<char> = name.to_lowercase().chars().collect();
            let max = (key.len().min(lower.len()) / 3).max(1);
            distance_within(&key, &lower, max).map(|d| (d, name))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name.to_owned())
}

/// The edit distance between `a` and `b`, counting an adjacent transposition as one
/// edit, when it is at most `max`; `None` when it is more.
///
/// Lengths further apart than `max` are refused before any work (the distance is at least
/// their difference), and only the three rows the transposition step reads are kept.
fn distance_within(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    // Rows i-2, i-1 and i of the full table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    let d = previous[b.len()];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(allow: bool) -> Keys {
        let upstream = json!({
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "api_key": {"type": "string"},
                "retries": {"type": ["integer", "null"]},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "tls": {"anyOf": [{"$ref": "#/$defs/Tls"}, {"type": "null"}]},
                "extra": true,
                "routes": {"type": "array", "items": {"$ref": "#/$defs/Route"}}
            },
            "$defs": {
                "Tls": {"type": "object", "properties": {"cert": {"type": "string"}}},
                "Route": {"type": "object", "properties": {"path": {"type": "string"}}}
            }
        });
        let http = json!({"type": "object", "properties": {"port": {"type": "integer"}}});
        Keys::new(
            vec![
                SectionKeys {
                    path: "upstream",
                    schema: upstream,
                    allow_unknown: false,
                },
                SectionKeys {
                    path: "server.http",
                    schema: http,
                    allow_unknown: false,
                },
            ],
            allow,
        )
    }

    #[test]
    fn scope_removes_and_reports_unknown_keys_with_the_nearest_name() {
        let mut doc = json!({
            "$schema": "./schema.json",
            "htpp": {"x": 1},
            "server": {"http": {"port": 1, "prot": 2}, "htp": {}},
            "upstream": {
                "url": "u", "api_kee": "SECRET",
                "headers": {"anything": "goes"},
                "tls": {"cert": "c", "cret": "d"},
                "extra": {"free": {"form": 1}},
                "routes": [{"path": "/", "pth": "/x"}]
            }
        });
        let unknown = keys(false).scope(&mut doc);
        let found: Vec<(&str, Option<&str>, Option<&str>)> = unknown
            .iter()
            .map(|u| (u.key.as_str(), u.section, u.nearest.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                ("htpp", None, None),
                ("server.htp", None, Some("http")),
                ("server.http.prot", Some("server.http"), Some("port")),
                ("upstream.api_kee", Some("upstream"), Some("api_key")),
                ("upstream.routes.0.pth", Some("upstream"), Some("path")),
                ("upstream.tls.cret", Some("upstream"), Some("cert")),
            ]
        );
        assert_eq!(
            doc,
            json!({
                "server": {"http": {"port": 1}},
                "upstream": {
                    "url": "u",
                    "headers": {"anything": "goes"},
                    "tls": {"cert": "c"},
                    "extra": {"free": {"form": 1}},
                    "routes": [{"path": "/"}]
                }
            })
        );
    }

    #[test]
    fn allowed_unknown_keys_are_removed_silently() {
        let mut doc = json!({"other": 1, "upstream": {"url": "u", "typo": 2}});
        assert!(keys(true).scope(&mut doc).is_empty());
        assert_eq!(doc, json!({"upstream": {"url": "u"}}));
    }

    #[test]
    fn targets_follow_the_schema_in_any_case() {
        let keys = keys(false);
        let parts = |s: &str| s.split("__").map(str::to_owned).collect::<Vec<_>>();
        let key = |t: KeyTarget<'_>| t.path.join(".");
        let t = keys.target(&parts("UPSTREAM__API_KEY")).expect("a field");
        assert_eq!(t.path, ["upstream", "api_key"]);
        assert!(t.types().string && !t.types().integer);
        let t = keys
            .target(&parts("server__http__PORT"))
            .expect("a nested section's field");
        assert_eq!(t.path, ["server", "http", "port"]);
        assert!(t.types().integer);
        let t = keys
            .target(&parts("upstream__retries"))
            .expect("an optional field");
        assert!(t.types().integer && t.types().null && !t.types().string);
        let t = keys
            .target(&parts("upstream__headers__X_Trace"))
            .expect("a map key");
        assert_eq!(key(t), "upstream.headers.x_trace");
        let t = keys
            .target(&parts("upstream__tls__cert"))
            .expect("through a $ref");
        assert_eq!(key(t), "upstream.tls.cert");
        assert!(
            keys.target(&parts("upstream__routes"))
                .expect("a list")
                .item_types()
                .object
        );
        for unknown in [
            "ADMIN_TOKEN",
            "upstream__api_kee",
            "server",
            "server__htp__port",
            "upstream__url__x",
        ] {
            assert!(keys.target(&parts(unknown)).is_none(), "{unknown}");
        }
    }

    #[test]
    fn nearest_names_only_typos() {
        let names = ["http", "greeting", "api_key", "limits"];
        assert_eq!(nearest("htpp", names.into_iter()).as_deref(), Some("http"));
        assert_eq!(
            nearest("greting", names.into_iter()).as_deref(),
            Some("greeting")
        );
        assert_eq!(
            nearest("api_kee", names.into_iter()).as_deref(),
            Some("api_key")
        );
        assert_eq!(
            nearest("API_KEY", names.into_iter()).as_deref(),
            Some("api_key")
        );
        assert_eq!(nearest("database", names.into_iter()), None);
        assert_eq!(distance_within(&chars("ab"), &chars("ba"), 1), Some(1));
        assert_eq!(
            nearest(&"a".repeat(65), ["a".repeat(65).as_str()].into_iter()),
            None
        );
    }

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    /// The full table, every row kept: what `distance_within` must agree with.
    fn full_distance(a: &[char], b: &[char]) -> usize {
        let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in rows.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in rows[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut d = (rows[i - 1][j] + 1)
                    .min(rows[i][j - 1] + 1)
                    .min(rows[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d = d.min(rows[i - 2][j - 2] + 1);
                }
                rows[i][j] = d;
            }
        }
        rows[a.len()][b.len()]
    }

    proptest::proptest! {
        /// Small alphabets make near misses (and transpositions) common.
        #[test]
        fn bounded_distance_is_the_full_one_within_its_bound(
            a in "[abcé_]{0,12}",
            b in "[abcé_]{0,12}",
            max in 0usize..8,
        ) {
            let (a, b) = (chars(&a), chars(&b));
            let full = full_distance(&a, &b);
            proptest::prop_assert_eq!(
                distance_within(&a, &b, max),
                (full <= max).then_some(full)
            );
        }
    }
}
