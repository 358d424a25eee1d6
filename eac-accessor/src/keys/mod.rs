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
use crate::hash::{ContentHash, Hasher};

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
        self.scope_hashed(document).0
    }

    /// [`scope`](Keys::scope), and the [`ContentHash`] of the scoped document, written
    /// as the walk goes: the walk reads every key of the document anyway, and a second
    /// walk for the hash would read the whole document again.
    pub(crate) fn scope_hashed(&self, document: &mut Value) -> (Vec<Unknown>, ContentHash) {
        let mut out = Vec::new();
        let mut hasher = Hasher::new();
        if let Value::Object(map) = document {
            map.remove(SCHEMA_KEY);
            // Every entry of a map field has the same schema: read it once.
            let cache = Levels::default();
            let mut walk = Walk {
                path: String::new(),
                hasher: &mut hasher,
                removed: false,
                out: &mut out,
            };
            self.scope_tree(map, &self.tree, &cache, &mut walk);
            if walk.removed {
                // The hash wrote the length of an object before some of its keys were
                // removed: hash the scoped document again. Rare: an unknown key rejects
                // the candidate unless allowed.
                return (out, ContentHash::of(document));
            }
        } else {
            hasher.value(document);
        }
        (out, hasher.finish())
    }

    /// Scopes `map`, whose dotted key is `walk.path`, and writes it to the hash.
    fn scope_tree<'c>(
        &'c self,
        map: &mut Map<String, Value>,
        tree: &Tree,
        cache: &'c Levels<'c>,
        walk: &mut Walk<'_>,
    ) {
        walk.hasher.object(map.len());
        let mut unknown = false;
        for (key, value) in map.iter_mut() {
            let len = push_segment(&mut walk.path, key);
            match tree.children.get(key) {
                Some(child) => {
                    walk.hasher.key(key);
                    self.scope_entry(value, child, cache, walk);
                }
                None => {
                    if !self.allow_unknown {
                        walk.out.push(Unknown {
                            nearest: nearest(key, tree.children.keys().map(String::as_str)),
                            key: walk.path.clone(),
                            section: None,
                        });
                    }
                    unknown = true;
                }
            }
            walk.path.truncate(len);
        }
        // Removing is rare (it rejects the candidate unless allowed): a second pass then,
        // rather than walking every map with a cursor that can remove.
        if unknown {
            map.retain(|key, _| tree.children.contains_key(key));
            walk.removed = true;
        }
    }

    /// Scopes the value at `walk.path`, which the section tree reaches at `node`, and
    /// writes it to the hash.
    fn scope_entry<'c>(
        &'c self,
        value: &mut Value,
        node: &Tree,
        cache: &'c Levels<'c>,
        walk: &mut Walk<'_>,
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
                scope.walk(value, &[walker.root], node, walk);
            }
            None => match value {
                Value::Object(inner) => self.scope_tree(inner, node, cache, walk),
                other => walk.hasher.value(other),
            },
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

/// What a scoping walk carries along: where it is, the hash it writes, and the unknown
/// keys it found.
struct Walk<'w> {
    /// The dotted key of the value being walked, a buffer the walk extends and restores.
    path: String,
    /// The hash of the document as the walk found it, while nothing was removed.
    hasher: &'w mut Hasher,
    /// A key was removed: the hash wrote the length its object had before.
    removed: bool,
    out: &'w mut Vec<Unknown>,
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
    /// Scopes `value`, which the schema `nodes` describe, and writes it to the hash.
    fn walk(&self, value: &mut Value, nodes: &[&'k Value], tree: &Tree, walk: &mut Walk<'_>) {
        if !matches!(value, Value::Object(_) | Value::Array(_)) {
            // Nothing below a scalar to scope.
            walk.hasher.value(value);
            return;
        }
        let level = self.level(nodes);
        if level.open {
            walk.hasher.value(value);
            return;
        }
        match value {
            Value::Object(map) => {
                walk.hasher.object(map.len());
                let mut unknown = false;
                for (key, v) in map.iter_mut() {
                    let len = push_segment(&mut walk.path, key);
                    if let Some(deeper) = tree.children.get(key) {
                        // Another registered section lives here (`server` and `server.http`).
                        walk.hasher.key(key);
                        self.keys.scope_entry(v, deeper, self.cache, walk);
                    } else if let Some(children) = level.child(key) {
                        walk.hasher.key(key);
                        self.walk(v, children, &NO_SECTIONS, walk);
                    } else {
                        if !self.allow {
                            let names = level.fields.iter().map(|(name, _)| *name);
                            walk.out.push(Unknown {
                                nearest: nearest(key, names),
                                key: walk.path.clone(),
                                section: Some(self.section),
                            });
                        }
                        unknown = true;
                    }
                    walk.path.truncate(len);
                }
                if unknown {
                    map.retain(|key, _| {
                        tree.children.contains_key(key) || level.child(key).is_some()
                    });
                    walk.removed = true;
                }
            }
            Value::Array(items) => {
                walk.hasher.array(items.len());
                for (i, item) in items.iter_mut().enumerate() {
                    let len = push_segment(&mut walk.path, &i.to_string());
                    self.walk(item, &level.items, &NO_SECTIONS, walk);
                    walk.path.truncate(len);
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
