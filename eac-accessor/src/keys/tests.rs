use super::unknown::distance_within;
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

/// A document with a misspelled key at each level the sections reach (and `$schema`),
/// `routes` as given.
fn misspelled(routes: Value) -> Value {
    json!({
        "$schema": "./schema.json",
        "htpp": {"x": 1},
        "server": {"http": {"port": 1, "prot": 2}, "htp": {}},
        "upstream": {
            "url": "u", "api_kee": "SECRET",
            "headers": {"anything": "goes"},
            "tls": {"cert": "c", "cret": "d"},
            "extra": {"free": {"form": 1}},
            "routes": routes
        }
    })
}

#[test]
fn scope_removes_and_reports_unknown_keys_with_the_nearest_name() {
    let mut doc = misspelled(json!([{"path": "/", "pth": "/x"}]));
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

/// A JSON value over keys that the test schema partly owns, so that a walk meets known
/// fields, unknown keys, map fields, lists, open fields and another section below one.
fn any_document() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop::sample::select(vec![
        "upstream", "server", "http", "port", "prot", "url", "api_key", "headers", "tls", "cert",
        "extra", "routes", "path", "retries", "other", "$schema",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

#[test]
fn the_hash_written_by_the_scoping_walk_is_the_hash_of_the_scoped_document() {
    for allow in [false, true] {
        for mut doc in [
            misspelled(json!([{"path": "/", "pth": "/x"}, 3, null])),
            json!({"server": 5, "upstream": [1, 2]}),
            json!({}),
            json!([1, {"upstream": 2}]),
            json!("text"),
        ] {
            let (_, hash) = keys(allow).scope_hashed(&mut doc);
            assert_eq!(hash, crate::ContentHash::of(&doc), "{doc}");
        }
    }
}

proptest::proptest! {
    #[test]
    fn any_scoped_document_hashes_as_written_by_its_walk(
        mut doc in any_document(),
        allow in proptest::prelude::any::<bool>(),
    ) {
        let (_, hash) = keys(allow).scope_hashed(&mut doc);
        proptest::prop_assert_eq!(hash, crate::ContentHash::of(&doc));
    }
}
