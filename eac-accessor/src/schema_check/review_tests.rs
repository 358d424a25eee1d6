//! Edge cases a review found, each checked against the `jsonschema` crate: numbers past
//! `f64`'s precision, `$id` below the root, `additionalProperties` through a `$ref`,
//! malformed `%` escapes, schemas that apply themselves to the same value, empty lists.

use super::tests::agree;
use super::*;
use serde_json::json;

/// Why this checker refuses `schema`.
fn refused(schema: &Value) -> String {
    match Checker::new(schema) {
        Ok(_) => panic!("{schema} was accepted"),
        Err(e) => e.to_string(),
    }
}

/// 2^53 + 1 is not an `f64`: it rounds to 2^53, and `u64::MAX` rounds to 2^64. Integers
/// and floats are compared exactly, as jsonschema compares them, in the bounds, `enum`,
/// `const` and `uniqueItems`.
#[test]
fn integers_and_floats_compare_exactly_past_f64_precision() {
    let above = json!(9_007_199_254_740_993u64);
    let below = json!(-9_007_199_254_740_993i64);
    let cases = [
        (json!({"maximum": 9007199254740992.0}), vec![above.clone()]),
        (
            json!({"exclusiveMaximum": 9007199254740994.0}),
            vec![above.clone()],
        ),
        (json!({"minimum": -9007199254740992.0}), vec![below.clone()]),
        (
            json!({"exclusiveMinimum": -9007199254740994.0}),
            vec![below.clone()],
        ),
        (
            json!({"exclusiveMaximum": 18446744073709551616.0}),
            vec![json!(u64::MAX), json!(18446744073709551616.0)],
        ),
        (
            json!({"exclusiveMinimum": -9223372036854775808.0, "minimum": -9223372036854775808.0}),
            vec![json!(i64::MIN), json!(i64::MIN + 1)],
        ),
        (
            json!({"maximum": 9007199254740993u64}),
            vec![json!(9007199254740992.0), json!(9007199254740994.0)],
        ),
        (
            json!({"enum": [9007199254740992.0, {"a": [18446744073709551616.0]}]}),
            vec![
                above.clone(),
                json!(9_007_199_254_740_992u64),
                json!({"a": [u64::MAX]}),
                json!({"a": [18446744073709551616.0]}),
            ],
        ),
        (json!({"const": 9007199254740992.0}), vec![above.clone()]),
        (
            json!({"uniqueItems": true}),
            vec![
                json!([9_007_199_254_740_993u64, 9007199254740992.0]),
                json!([1, 1.0]),
                json!([0, -0.0]),
                json!([{"a": 1, "b": [2.0]}, {"b": [2], "a": 1.0}]),
            ],
        ),
        (
            json!({"type": "integer", "minimum": -0.0, "maximum": 1e300}),
            vec![json!(-0.0), json!(0), json!(1e300), json!(-1e-300)],
        ),
    ];
    for (schema, values) in cases {
        for value in values {
            agree(&schema, &value);
        }
    }
}

/// `$id` below the root makes a schema resource of its own, and its `#/…` references
/// resolve against it (jsonschema finds `integer` below); this checker resolves against
/// the root only, so it refuses such a schema by name and place rather than check it
/// against the wrong definition.
#[test]
fn an_id_below_the_root_is_refused() {
    let nested = json!({
        "$defs": {"a": {"type": "string"}},
        "properties": {"x": {"$id": "http://example.com/x", "$ref": "#/$defs/a",
                             "$defs": {"a": {"type": "integer"}}}}
    });
    let theirs = jsonschema::validator_for(&nested).unwrap();
    assert!(theirs.is_valid(&json!({"x": 1})));
    assert_eq!(
        refused(&nested),
        "the keyword `$id` below the root (a schema resource of its own, which its references \
         resolve against), which eac's built-in checker does not check (at `/properties/x/$id`)"
    );
    // Beside other rules, and in a definition reached by a reference.
    assert!(
        refused(
            &json!({"properties": {"x": {"$id": "x.json", "$ref": "#/$defs/a",
                                             "minimum": 0}},
                        "$defs": {"a": {}}})
        )
        .contains("(at `/properties/x/$id`)")
    );
    assert!(
        refused(&json!({"properties": {"x": {"$ref": "#/$defs/a"}},
                        "$defs": {"a": {"$id": "a.json", "type": "integer"}}}))
        .contains("(at `/$defs/a/$id`)")
    );
    // At the root it names the document, against which `#/…` resolves anyway.
    let rooted = json!({"$id": "http://example.com/root.json", "$ref": "#/$defs/a",
                        "$defs": {"a": {"properties": {"x": {"$ref": "#/$defs/b"}}},
                                  "b": {"type": "integer"}}});
    agree(&rooted, &json!({"x": 1}));
    agree(&rooted, &json!({"x": "s"}));
}

/// `additionalProperties: false` is one violation at the object; a `$ref` to `false` is a
/// schema that each extra property breaks where it is, as jsonschema reports it.
#[test]
fn additional_properties_through_a_reference_to_false_is_reported_per_property() {
    let schema = json!({"properties": {"a": {}}, "patternProperties": {"^\\d+$": {}},
                        "additionalProperties": {"$ref": "#/$defs/no"}, "$defs": {"no": false}});
    for value in [json!({"a": 1, "1": 2}), json!({"a": 1, "x": 2, "y/~": 3})] {
        agree(&schema, &value);
    }
    agree(
        &json!({"properties": {"a": {}}, "additionalProperties": false}),
        &json!({"a": 1, "x": 2, "y": 3}),
    );
}

/// A `%` escape is two hex digits (`u8::from_str_radix` alone would take `%+1`), and the
/// bytes decode as UTF-8; jsonschema refuses the others, and so does this checker.
#[test]
fn a_reference_with_malformed_percent_escapes_is_refused() {
    for (target, key) in [
        ("#/$defs/a%+1", "a\u{1}"),
        ("#/$defs/a%2", "a%2"),
        ("#/$defs/%FF", "\u{fffd}"),
        ("#/$defs/%zz", "%zz"),
    ] {
        let schema = json!({"$ref": target, "$defs": {(key): {"type": "integer"}}});
        assert!(jsonschema::validator_for(&schema).is_err(), "{schema}");
        let message = refused(&schema);
        assert!(
            message.contains(&format!("the reference `{target}`, whose `%` escapes")),
            "{message}"
        );
    }
    for (target, key) in [
        ("#/$defs/%C3%A9", "é"),
        ("#/$defs/a%25b", "a%b"),
        ("#/$defs/a~1b", "a/b"),
        ("#/$defs/a~0b", "a~b"),
    ] {
        let schema = json!({"$ref": target, "$defs": {(key): {"type": "integer"}}});
        agree(&schema, &json!("s"));
        agree(&schema, &json!(1));
    }
    // Decoded first, then read as a pointer: `%2F` separates segments like `/`.
    let schema = json!({"$ref": "#/$defs/a%2Fb", "$defs": {"a": {"b": {"type": "integer"}}}});
    agree(&schema, &json!("s"));
}

/// A schema that reaches itself through `$ref`, `allOf`, `anyOf`, `oneOf` or `not` without
/// descending into the value recursed until the stack overflowed (an abort, not a
/// panic). The specification leaves such schemas undefined; this checker refuses them.
#[test]
fn a_schema_that_applies_itself_to_the_same_value_is_refused() {
    for (schema, at) in [
        (json!({"$ref": "#", "type": "object"}), "/"),
        (
            json!({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}], "minimum": 0}},
                   "$ref": "#/$defs/a"}),
            "/$defs/a",
        ),
        (
            json!({"$defs": {"a": {"not": {"$ref": "#/$defs/a"}}},
                   "properties": {"x": {"$ref": "#/$defs/a"}}}),
            "/$defs/a",
        ),
        (
            json!({"$defs": {"a": {"anyOf": [true, {"$ref": "#/$defs/b"}]},
                             "b": {"oneOf": [{"$ref": "#/$defs/a"}], "type": "object"}},
                   "items": {"$ref": "#/$defs/b"}}),
            "/$defs/b",
        ),
    ] {
        let message = refused(&schema);
        assert!(
            message.contains("applies itself to the same value again")
                && message.contains(&format!("(at `{at}`)")),
            "{schema}: {message}"
        );
    }
    // One schema reached twice, by two ways, is no cycle.
    let diamond = json!({"$defs": {"a": {"type": "integer"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
                         "anyOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/b"}],
                         "oneOf": [{"$ref": "#/$defs/b"}], "not": {"$ref": "#/$defs/a", "minimum": 5}});
    for value in [json!(1), json!(7), json!("s")] {
        agree(&diamond, &value);
    }
    // Through `properties` or `items` each turn goes one level down the value: it ends.
    let list = json!({"$defs": {"node": {"anyOf": [{"type": "null"},
                                                   {"allOf": [{"required": ["next"]}],
                                                    "properties": {"next": {"$ref": "#/$defs/node"}},
                                                    "items": {"$ref": "#"}}]}},
                      "$ref": "#/$defs/node"});
    agree(&list, &json!({"next": {"next": null}}));
    agree(&list, &json!({"next": {"next": 1}}));
    agree(&list, &json!({"next": {}}));
}

/// `allOf`, `anyOf`, `oneOf` and `type` with no entries are not schemas (jsonschema
/// refuses them); an empty `anyOf` was read as no rule at all.
#[test]
fn empty_applicator_and_type_lists_are_refused() {
    for keyword in ["allOf", "anyOf", "oneOf", "type"] {
        let schema = json!({"properties": {"x": {(keyword): []}}});
        assert!(jsonschema::validator_for(&schema).is_err(), "{schema}");
        assert_eq!(
            refused(&schema),
            format!("`{keyword}` is an empty list (at `/properties/x/{keyword}`)")
        );
    }
}

/// The two `patternProperties` schemars gives integer-keyed maps match the keys
/// jsonschema's regex matches: ASCII digits only (it reads `\d` as `[0-9]`), the whole
/// key, no sign but one leading `-`.
#[test]
fn integer_key_patterns_match_the_keys_jsonschema_matches() {
    let keys = [
        "",
        "-",
        "--1",
        "0",
        "01",
        "+1",
        "-0",
        "-01",
        " 1",
        "1 ",
        "1\n",
        "\n1",
        "١",
        "٣2",
        "１",
        "1.0",
        "1e3",
        "0x1",
        "12345678901234567890123",
    ];
    for pattern in [r"^\d+$", r"^-?\d+$"] {
        let schema = json!({"patternProperties": {(pattern): false}});
        for key in keys {
            agree(&schema, &json!({(key): 1}));
        }
        // With `properties` and `additionalProperties` beside it.
        let schema = json!({"patternProperties": {(pattern): {"type": "string"}},
                            "properties": {"-0": {"type": "integer"}},
                            "additionalProperties": false});
        let all: Map<String, Value> = keys.iter().map(|k| ((*k).to_owned(), json!(1))).collect();
        agree(&schema, &Value::Object(all));
        agree(&schema, &json!({"-0": "s", "7": "s"}));
    }
}

/// `$ref` with siblings (all apply in 2020-12), boolean schemas in each place, `items`
/// after `prefixItems`, `not` of booleans, the empty schema.
#[test]
fn reference_siblings_and_boolean_schemas_agree_with_jsonschema() {
    let cases = [
        (
            json!({"$ref": "#/$defs/a", "$defs": {"a": {"type": "integer"}},
                   "minimum": 3, "title": "t"}),
            vec![json!(1), json!("s"), json!(4)],
        ),
        (
            json!({"properties": {"x": {"$ref": "#/$defs/a", "maximum": 1, "description": "d"}},
                   "$defs": {"a": {"type": "integer"}}}),
            vec![json!({"x": 2}), json!({"x": 1.5}), json!({"x": 0})],
        ),
        (
            json!({"prefixItems": [true, false], "items": false}),
            vec![json!([]), json!([1]), json!([1, 2]), json!([1, 2, 3])],
        ),
        (
            json!({"properties": {"t": true, "f": false}, "additionalProperties": true,
                   "allOf": [true], "anyOf": [false, true], "oneOf": [true, false]}),
            vec![json!({"t": 1}), json!({"f": 1}), json!({"z": 1})],
        ),
        (json!({"not": false}), vec![json!(1)]),
        (json!({"not": true}), vec![json!(1)]),
        (json!({"not": {}}), vec![json!(null)]),
        (json!({}), vec![json!(null), json!([{}])]),
        (
            json!({"oneOf": [{"type": "integer"}, {"type": "number"}]}),
            vec![json!(1), json!(1.0), json!(1.5), json!("s")],
        ),
        (
            json!({"type": ["integer", "string"], "enum": [1, "1", 2.5]}),
            vec![json!(1.0), json!("1"), json!(2.5), json!(2)],
        ),
    ];
    for (schema, values) in cases {
        for value in values {
            agree(&schema, &value);
        }
    }
}

/// A reference to a named anchor (`#name`, which `$anchor` declares) is refused by name,
/// not as a pointer that "points at nothing"; `#` alone is the root.
#[test]
fn a_reference_to_an_anchor_is_refused_as_such() {
    let schema = json!({"$ref": "#int", "$defs": {"i": {"$anchor": "int", "type": "integer"}}});
    // jsonschema resolves it: the refusal is ours, for a keyword derived schemas never use.
    assert!(jsonschema::validator_for(&schema).is_ok());
    let message = refused(&schema);
    assert!(
        message.contains("the reference `#int`, to a named anchor (`$anchor`)"),
        "{message}"
    );
    let root = json!({"properties": {"next": {"$ref": "#"}}, "type": "object"});
    agree(&root, &json!({"next": {"next": 1}}));
    agree(&root, &json!({"next": {"next": {}}}));
}
