//! The JSON Schema of every registered section in one document, for editors.

use serde_json::{Map, Value, json};

use crate::section::SectionSpec;

/// Draft-07: what the YAML and TOML language servers read.
const DRAFT_07: &str = "http://json-schema.org/draft-07/schema#";

/// One draft-07 schema for the whole document: each section's schema nested at its
/// dotted path, their definitions hoisted to the root (`$defs` → `definitions`), and
/// unknown top-level keys refused unless `allow_unknown`. A top-level `$schema` key is
/// allowed, as the pipeline ignores it.
pub(crate) fn export(specs: &[SectionSpec], allow_unknown: bool) -> Value {
    let mut root = json!({
        "$schema": DRAFT_07,
        "type": "object",
        "properties": { "$schema": { "type": "string" } },
    });
    let mut definitions = Map::new();
    for spec in specs {
        let mut schema = spec.keys.schema.clone();
        if let Value::Object(map) = &mut schema {
            map.remove("$schema");
            for key in ["$defs", "definitions"] {
                if let Some(Value::Object(defs)) = map.remove(key) {
                    for (name, def) in defs {
                        definitions.entry(name).or_insert(def);
                    }
                }
            }
        }
        place(&mut root, spec.path, schema);
    }
    if !allow_unknown {
        root["additionalProperties"] = Value::Bool(false);
    }
    if !definitions.is_empty() {
        root["definitions"] = Value::Object(definitions);
    }
    rewrite_refs(&mut root);
    root
}

/// Puts `schema` at dotted `path` under `root`'s properties, making objects on the way.
fn place(root: &mut Value, path: &str, schema: Value) {
    let mut node = root;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let properties = node
            .as_object_mut()
            .expect("an object schema")
            .entry("properties")
            .or_insert_with(|| json!({}));
        if segments.peek().is_none() {
            properties[segment] = schema;
            return;
        }
        node = properties
            .as_object_mut()
            .expect("properties is an object")
            .entry(segment)
            .or_insert_with(|| json!({ "type": "object" }));
    }
}

/// `#/$defs/X` → `#/definitions/X`, everywhere.
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(name) = r.strip_prefix("#/$defs/")
            {
                *r = format!("#/definitions/{name}");
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}
