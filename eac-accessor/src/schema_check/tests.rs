use super::*;
use serde_json::json;

/// `value` against `schema` here and in the `jsonschema` crate: the same answer, and the
/// same broken rules (by place and keyword, in any order).
pub(super) fn agree(schema: &Value, value: &Value) {
    let ours = Checker::new(schema).unwrap_or_else(|e| panic!("{e}: {schema}"));
    let theirs = jsonschema::validator_for(schema).expect("a schema jsonschema reads");
    assert_eq!(
        ours.is_valid(value),
        theirs.is_valid(value),
        "validity of {value} against {schema}"
    );
    let mut our_rules: Vec<(String, String)> = ours
        .violations(value)
        .iter()
        .map(|v| (v.pointer.clone(), keyword(&v.kind)))
        .collect();
    let mut their_rules: Vec<(String, String)> = theirs
        .iter_errors(value)
        .map(|e| {
            (
                e.instance_path().as_str().to_owned(),
                e.kind().keyword().to_owned(),
            )
        })
        .collect();
    our_rules.sort();
    their_rules.sort();
    assert_eq!(
        our_rules, their_rules,
        "rules broken by {value} against {schema}"
    );
}

/// The `jsonschema` keyword a broken rule is reported under.
fn keyword(kind: &Kind) -> String {
    match kind {
        Kind::Required { .. } => "required",
        Kind::AdditionalProperties { .. } => "additionalProperties",
        Kind::Type { .. } => "type",
        Kind::Minimum { .. } => "minimum",
        Kind::Maximum { .. } => "maximum",
        Kind::ExclusiveMinimum { .. } => "exclusiveMinimum",
        Kind::ExclusiveMaximum { .. } => "exclusiveMaximum",
        Kind::MinLength { .. } => "minLength",
        Kind::MaxLength { .. } => "maxLength",
        Kind::MinItems { .. } => "minItems",
        Kind::MaxItems { .. } => "maxItems",
        Kind::Enum { .. } => "enum",
        Kind::Constant { .. } => "const",
        Kind::Pattern { .. } => "pattern",
        Kind::Format { .. } => "format",
        Kind::Other { keyword } => keyword,
    }
    .to_owned()
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Upstream {
    #[schemars(length(min = 1, max = 8))]
    name: String,
    #[schemars(range(min = 1, max = 65535))]
    port: u16,
    weight: f64,
    retries: Option<u32>,
    tags: Vec<String>,
    #[schemars(length(min = 1, max = 2))]
    hosts: Vec<Host>,
    headers: std::collections::BTreeMap<String, String>,
    mode: Mode,
    shape: Shape,
    pair: (u8, bool),
    unique: std::collections::BTreeSet<u8>,
    nested: Option<Box<Host>>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Host {
    address: String,
    #[serde(default)]
    backup: bool,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Mode {
    Fast,
    Safe,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(dead_code)]
enum Shape {
    Circle { radius: f64 },
    Square { side: u32 },
}

fn upstream_schema() -> Value {
    schemars::schema_for!(Upstream).to_value()
}

fn good() -> Value {
    json!({
        "name": "api",
        "port": 8080,
        "weight": 0.5,
        "retries": null,
        "tags": ["a", "b"],
        "hosts": [{"address": "10.0.0.1"}],
        "headers": {"x": "y"},
        "mode": "fast",
        "shape": {"kind": "circle", "radius": 2.0},
        "pair": [1, true],
        "unique": [1, 2],
        "nested": {"address": "h", "backup": true}
    })
}

#[test]
fn a_derived_schema_compiles_and_a_good_value_passes() {
    let schema = upstream_schema();
    let checker = Checker::new(&schema).unwrap();
    assert!(checker.is_valid(&good()));
    assert!(checker.violations(&good()).is_empty());
    agree(&schema, &good());
}

#[test]
fn each_broken_rule_is_found_where_jsonschema_finds_it() {
    let schema = upstream_schema();
    let broken: &[(&str, Value)] = &[
        ("/name", json!("")),
        ("/name", json!("much too long")),
        ("/name", json!(5)),
        ("/port", json!(0)),
        ("/port", json!(70000)),
        ("/port", json!(-1)),
        ("/port", json!(80.5)),
        ("/weight", json!("heavy")),
        ("/retries", json!(-3)),
        ("/retries", json!("x")),
        ("/tags", json!(["a", 1])),
        ("/hosts", json!([])),
        (
            "/hosts",
            json!([{"address": "a"}, {"address": "b"}, {"address": "c"}]),
        ),
        ("/hosts", json!([{"address": "a", "extra": 1}])),
        ("/hosts", json!([{"backup": true}])),
        ("/headers", json!({"x": 1})),
        ("/mode", json!("slow")),
        ("/mode", json!(3)),
        ("/shape", json!({"kind": "triangle"})),
        ("/shape", json!({"kind": "square", "side": -1})),
        ("/shape", json!({"kind": "circle"})),
        ("/pair", json!([1])),
        ("/pair", json!([1, true, 3])),
        ("/pair", json!(["a", true])),
        ("/unique", json!([1, 1])),
        ("/nested", json!({"address": 1})),
        ("/nested", json!(7)),
    ];
    for (pointer, bad) in broken {
        let mut value = good();
        *value.pointer_mut(pointer).unwrap() = bad.clone();
        let checker = Checker::new(&schema).unwrap();
        assert!(!checker.is_valid(&value), "{pointer} = {bad} passed");
        assert!(
            checker
                .violations(&value)
                .iter()
                .all(|v| v.pointer.starts_with(pointer)),
            "{pointer} = {bad}: {:?}",
            checker.violations(&value)
        );
        agree(&schema, &value);
    }
    // Missing required fields, and the wrong type at the top.
    let mut value = good();
    value.as_object_mut().unwrap().remove("name");
    value.as_object_mut().unwrap().remove("mode");
    agree(&schema, &value);
    agree(&schema, &json!([1, 2]));
    agree(&schema, &json!(null));
}

#[test]
fn hand_written_keywords_agree_with_jsonschema() {
    let cases = [
        (
            json!({"type": ["integer", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 10}),
            vec![
                json!(0),
                json!(10),
                json!(5),
                json!(null),
                json!(5.5),
                json!("5"),
            ],
        ),
        (
            json!({"enum": [1, "a", [1, 2], {"k": 1.0}]}),
            vec![
                json!(1),
                json!(1.0),
                json!("a"),
                json!([1, 2]),
                json!({"k": 1}),
                json!(2),
            ],
        ),
        (
            json!({"const": {"a": [1, 2]}}),
            vec![json!({"a": [1, 2]}), json!({"a": [2, 1]})],
        ),
        (
            json!({"type": "object", "minProperties": 1, "maxProperties": 2,
                "additionalProperties": {"type": "integer"}}),
            vec![
                json!({}),
                json!({"a": 1}),
                json!({"a": 1, "b": 2, "c": 3}),
                json!({"a": "x"}),
            ],
        ),
        (
            json!({"allOf": [{"minimum": 1}, {"maximum": 3}]}),
            vec![json!(0), json!(2), json!(4)],
        ),
        (
            json!({"anyOf": [{"type": "string"}, {"minimum": 3}]}),
            vec![json!("s"), json!(4), json!(2)],
        ),
        (
            json!({"oneOf": [{"minimum": 1}, {"maximum": 3}]}),
            vec![json!(0), json!(2), json!(4)],
        ),
        (
            json!({"not": {"type": "string"}}),
            vec![json!("s"), json!(1)],
        ),
        (json!({"items": false}), vec![json!([]), json!([1])]),
        (
            json!({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}),
            vec![json!(["a", 1, 2]), json!([1]), json!(["a", "b"])],
        ),
        (
            json!({"$defs": {"n": {"$ref": "#/$defs/m"}, "m": {"type": "integer"}},
                "properties": {"x": {"$ref": "#/$defs/n"}}}),
            vec![json!({"x": 1}), json!({"x": "1"})],
        ),
        (
            json!({"$defs": {"tree": {"type": "object",
                                   "properties": {"kids": {"type": "array",
                                                           "items": {"$ref": "#/$defs/tree"}}}}},
                "$ref": "#/$defs/tree"}),
            vec![
                json!({"kids": [{"kids": []}]}),
                json!({"kids": [{"kids": [1]}]}),
            ],
        ),
        (
            json!({"minimum": 18446744073709551615u64}),
            vec![json!(18446744073709551615u64), json!(-1)],
        ),
        (json!({"maxLength": 2}), vec![json!("éé"), json!("ééé")]),
        (
            json!({"type": "integer"}),
            vec![json!(80.0), json!(80.5), json!(-0.0)],
        ),
        (
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/c"},
                          "c": {"type": "object", "required": ["k"],
                                "properties": {"k": {"$ref": "#/$defs/a"}, "n": {"maximum": 2}}}},
                "properties": {"x": {"$ref": "#/$defs/a"}, "y": {"$ref": "#/$defs/b"}},
                "required": ["x", "z"]}),
            vec![
                json!({"x": {"k": {"k": 1}}}),
                json!({"x": {"k": {"n": 1, "k": {"k": {}}}}, "z": 1}),
                json!({"x": {"k": {"k": {"n": 3}}}, "y": {"k": 1}, "z": 1}),
                json!({"z": 1, "x": {"k": 1}}),
            ],
        ),
        (
            json!({"properties": {"a": {}, "b": {}, "c": {}, "d": {}, "e": {}, "f": {}, "g": {},
                               "h": {}, "i": {"type": "string"}, "j": {"maximum": 1}},
                "required": ["i", "j", "q"], "additionalProperties": {"type": "integer"}}),
            vec![
                json!({"i": "s", "j": 1, "q": 3}),
                json!({"i": "s", "j": 1}),
                json!({"i": 1, "j": 1, "q": 3}),
                json!({"i": "s", "j": 2, "q": 3}),
                json!({"i": "s", "j": 1, "q": "x"}),
                json!({"a": 1, "i": "s", "j": 0, "q": 0}),
            ],
        ),
        (json!(false), vec![json!(1)]),
        (json!(true), vec![json!(1)]),
    ];
    for (schema, values) in cases {
        for value in values {
            agree(&schema, &value);
        }
    }
}

#[test]
fn a_keyword_it_does_not_check_is_refused_by_name_and_place() {
    let refused = |schema: Value| Checker::new(&schema).unwrap_err().to_string();
    assert_eq!(
        refused(json!({"properties": {"id": {"type": "string", "pattern": "^a"}}})),
        "the keyword `pattern`, which eac's built-in checker does not check \
         (at `/properties/id/pattern`)"
    );
    assert!(refused(json!({"multipleOf": 2})).contains("`multipleOf`"));
    assert!(
        refused(json!({"patternProperties": {"^[a-z]+$": {}}}))
            .contains("the pattern `^[a-z]+$` in `patternProperties`")
    );
    assert!(refused(json!({"$ref": "https://example.com/s.json"})).contains("outside the schema"));
    assert!(refused(json!({"$ref": "#/$defs/missing"})).contains("points at nothing"));
    assert!(
        refused(
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                       "$ref": "#/$defs/a"})
        )
        .contains("a cycle of references only")
    );
    assert!(
        refused(json!({"$schema": "http://json-schema.org/draft-07/schema#"}))
            .contains("only JSON Schema 2020-12")
    );
    // Annotations are read past.
    assert!(
        Checker::new(&json!({"title": "t", "description": "d", "default": 1,
                             "format": "uint16", "x-eac": true, "examples": [1]}))
        .is_ok()
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(512))]
    /// Values made of the document's own pieces, shuffled and broken, get the same
    /// answer and rules here as from jsonschema.
    #[test]
    fn generated_values_agree_with_jsonschema(value in arbitrary_json(3)) {
        let schema = upstream_schema();
        agree(&schema, &value);
        // And as the value of each field.
        for field in ["name", "port", "retries", "hosts", "mode", "shape", "pair", "unique"] {
            let mut whole = good();
            whole[field] = value.clone();
            agree(&schema, &whole);
        }
    }
}

fn arbitrary_json(depth: u32) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..70000).prop_map(Value::from),
        (-2.0f64..3.0).prop_map(Value::from),
        "[a-z]{0,10}".prop_map(Value::from),
        prop_oneof![
            Just("fast"),
            Just("safe"),
            Just("circle"),
            Just("square"),
            Just("kind")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("address".to_owned()),
                    Just("backup".to_owned()),
                    Just("kind".to_owned()),
                    Just("radius".to_owned()),
                    Just("side".to_owned()),
                    "[a-z]{1,4}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A section whose schema needs the whole specification (a `pattern` here) is refused
/// when the accessor is built, naming the section, the keyword, where it is and the
/// feature that checks it.
#[cfg(not(feature = "jsonschema"))]
#[test]
fn a_section_with_a_keyword_it_does_not_check_is_refused_at_build() {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Tagged {
        #[schemars(regex(pattern = "^[a-z]+$"))]
        tag: String,
    }
    impl crate::EaCSection for Tagged {
        const PATH: &'static str = "tagged";
    }
    let errors = crate::EaCAccessor::builder()
        .section::<Tagged>()
        .source(crate::source::Memory::new(
            "app",
            crate::source::Format::Toml,
            "[tagged]\ntag = \"a\"\n",
        ))
        .build()
        .unwrap_err();
    let message = errors.to_string();
    for part in [
        "tagged",
        "the keyword `pattern`",
        "/properties/tag/pattern",
        "`jsonschema` feature",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Shapes {
    by_id: std::collections::HashMap<u32, String>,
    by_offset: std::collections::BTreeMap<i32, u8>,
    #[serde(flatten)]
    common: Common,
    untagged: Untagged,
    external: External,
    adjacent: Adjacent,
    duration: std::time::Duration,
    fixed: [u8; 2],
    unit: (),
    ch: char,
    path: std::path::PathBuf,
    ip: std::net::IpAddr,
    socket: std::net::SocketAddr,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Common {
    region: String,
    zone: Option<String>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Untagged {
    Number(u32),
    Words { words: Vec<String> },
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
enum External {
    Off,
    Fixed(u32),
    Range { low: u32, high: u32 },
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "t", content = "c")]
#[allow(dead_code)]
enum Adjacent {
    A(String),
    B { n: i8 },
}

/// The shapes serde and schemars give other common field types (integer-keyed maps,
/// `flatten`, untagged / external / adjacent enums, durations, arrays, addresses) compile
/// here and are checked as jsonschema checks them.
#[test]
fn other_derived_shapes_compile_and_agree_with_jsonschema() {
    let schema = schemars::schema_for!(Shapes).to_value();
    Checker::new(&schema).unwrap_or_else(|e| panic!("{e}: {schema:#}"));
    let good = json!({
        "by_id": {"1": "a"},
        "by_offset": {"-3": 1, "4": 2},
        "region": "eu",
        "zone": null,
        "untagged": 3,
        "external": {"Range": {"low": 1, "high": 2}},
        "adjacent": {"t": "B", "c": {"n": -1}},
        "duration": {"secs": 1, "nanos": 0},
        "fixed": [1, 2],
        "unit": null,
        "ch": "x",
        "path": "/tmp",
        "ip": "127.0.0.1",
        "socket": "127.0.0.1:80"
    });
    agree(&schema, &good);
    for (pointer, bad) in [
        ("/by_id", json!({"x": 1})),
        ("/by_id", json!({"-1": "a", "2": "b"})),
        ("/by_id", json!({"12": 3, "": "e", "1a": "f"})),
        ("/by_offset", json!({"-3": 300, "--3": 1, "-": 2})),
        ("/region", json!(1)),
        ("/untagged", json!({"words": [1]})),
        ("/external", json!("Fixed")),
        ("/external", json!({"Fixed": -1})),
        ("/external", json!("Off")),
        ("/adjacent", json!({"t": "C"})),
        ("/duration", json!({"secs": -1, "nanos": 0})),
        ("/fixed", json!([1, 2, 3])),
        ("/fixed", json!([1, 256])),
        ("/unit", json!(1)),
        ("/ch", json!("xy")),
        ("/ip", json!(7)),
    ] {
        let mut value = good.clone();
        *value.pointer_mut(pointer).unwrap() = bad;
        agree(&schema, &value);
    }
}
