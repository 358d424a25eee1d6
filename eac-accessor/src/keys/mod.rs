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

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::error::dotted_to_pointer;

/// A top-level key that every document may carry for editors; never configuration.
pub(crate) const SCHEMA_KEY: &str = "$schema";

/// The registered sections' keys, filled in when the accessor is built (the env overlay
/// is added to the builder before it knows every section).
pub(crate) type KeysSlot = Arc<OnceLock<Arc<Keys>>>;

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
}

/// Below a section's own keys: no other section lives there.
static NO_SECTIONS: Tree = Tree {
    section: None,
    children: BTreeMap::new(),
};

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
                    self.walk(v, children, &NO_SECTIONS, path, out);
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
                    self.walk(item, &level.items, &NO_SECTIONS, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// The level of `nodes`, read now or earlier in this walk.
    fn level(&self, nodes: &[&'k Value]) -> Rc<Level<'k>> {
        self.cache.get(self.walker, nodes)
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

mod env_target;
#[cfg(test)]
mod tests;
mod unknown;
mod walker;

pub(crate) use env_target::KeyTarget;
pub(crate) use unknown::{Unknown, nearest};
use walker::{Level, Levels, Walker};
pub(crate) use walker::{Types, schema_type};
