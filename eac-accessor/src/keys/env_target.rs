//! Where an environment variable lands in the sections' keys.

use serde_json::Value;

use super::Keys;
use super::walker::Types;

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
