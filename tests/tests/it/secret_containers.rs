//! Secrets inside containers: every element of a list, every value of a map,
//! an `Option`, a tuple's member and the secrets of sections in a list or a map stay
//! out of errors, diffs, previews and documents.

use std::collections::{BTreeMap, HashMap, VecDeque};

use eac_accessor::source::Dir;
use eac_accessor::{Candidate, EaCAccessor, EaCSection, Origin, Secret};
use eac_tests::ConfigDir;
use schemars::JsonSchema;
use serde::Deserialize;

/// A `Vec` of secrets behind an alias, which the derive cannot see through.
type Pins = Vec<Secret<u32>>;

/// One of each container a secret can sit in. Every field has a default, so that each
/// test sets only the one it is about.
#[derive(Debug, Default, Deserialize, JsonSchema, EaCSection)]
#[eac(path = "vault")]
#[serde(default)]
struct Vault {
    maybe: Option<Secret<u32>>,
    boxed: Box<Secret<u32>>,
    list: Vec<Secret<u32>>,
    deque: VecDeque<Secret<u32>>,
    array: [Secret<u32>; 2],
    ordered: BTreeMap<String, Secret<u32>>,
    hashed: HashMap<String, Secret<u32>>,
    pair: (String, Secret<u32>),
    nested: Vec<Option<Secret<u32>>>,
    routes: Vec<Route>,
    by_name: BTreeMap<String, Route>,
    fallback: Option<Route>,
    pins: Pins,
}

/// A section found inside lists and maps of `Vault`.
#[derive(Debug, Default, Deserialize, JsonSchema, EaCSection)]
#[serde(default)]
struct Route {
    path: String,
    token: Secret<u32>,
}

#[test]
fn the_derive_places_every_secret_inside_a_container() {
    assert_eq!(
        Vault::secret_paths(),
        [
            "maybe",
            "boxed",
            "list.*",
            "deque.*",
            "array.*",
            "ordered.*",
            "hashed.*",
            "pair.1",
            "nested.*",
            "routes.*.token",
            "by_name.*.token",
            "fallback.token",
            "pins.*",
        ]
    );
}

/// The values used: none may show anywhere.
const OLD: u32 = 734_001;
const NEW: u32 = 734_002;
const WRONG: &str = "l34k-0f-a-guess";

/// For one field of `Vault`: the TOML that sets it to the secret `OLD`, to `NEW`, and
/// to a string where a number belongs (a schema error that would quote it).
fn field_with(field: &str) -> impl Fn(&str) -> String + '_ {
    move |value: &str| {
        let value = match field {
            "maybe" | "boxed" => value.to_owned(),
            "list" | "deque" | "array" | "nested" | "pins" => format!("[1, {value}]"),
            "ordered" | "hashed" => format!("{{ a = 1, b = {value} }}"),
            "pair" => format!("[\"name\", {value}]"),
            "routes" => format!("[{{ path = \"/\", token = {value} }}]"),
            "by_name" => format!("{{ main = {{ path = \"/\", token = {value} }} }}"),
            "fallback" => format!("{{ path = \"/\", token = {value} }}"),
            other => panic!("no field {other}"),
        };
        format!("[vault]\n{field} = {value}\n")
    }
}

fn assert_hidden(what: &str, text: &str) {
    for value in [OLD.to_string(), NEW.to_string(), WRONG.to_owned()] {
        assert!(!text.contains(&value), "{what} shows `{value}`: {text}");
    }
}

/// A schema error, a diff (previewed and published), the document and `source_of`,
/// for the secret in `field`: none shows a value.
fn secret_stays_hidden_in(field: &str) {
    let toml = field_with(field);
    let dir = ConfigDir::new();
    dir.write("vault.toml", &toml(&OLD.to_string()));
    let accessor = EaCAccessor::builder()
        .section::<Vault>()
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();

    // A schema error: a string where the secret number belongs.
    dir.write("vault.toml", &toml(&format!("\"{WRONG}\"")));
    let errors = accessor.reload(Origin::Refresh).unwrap_err();
    let shown = format!(
        "{errors} {errors:?} {}",
        serde_json::to_string(&errors).unwrap()
    );
    assert!(
        shown.contains(&format!("vault.{field}")),
        "the error names the key: {shown}"
    );
    assert!(shown.contains("secret, value hidden"), "{shown}");
    assert_hidden("the schema error", &shown);
    let preview = accessor.preview(Candidate::Sources);
    assert!(!preview.errors.is_empty());
    assert_hidden("the rejected preview", &format!("{preview:?}"));

    // A diff: the secret changes.
    dir.write("vault.toml", &toml(&NEW.to_string()));
    let preview = accessor.preview(Candidate::Sources);
    assert!(preview.would_publish, "{:?}", preview.errors);
    assert!(!preview.diff.is_empty());
    let diff = format!(
        "{} {:?} {}",
        preview.diff,
        preview.diff,
        serde_json::to_string(&preview).unwrap()
    );
    assert!(diff.contains("[redacted]"), "{diff}");
    assert_hidden("the diff", &diff);

    accessor.reload(Origin::Refresh).unwrap();
    let snapshot = accessor.load();
    assert_hidden(
        "the redacted document",
        &snapshot.redacted_document().to_string(),
    );
    let source_of = snapshot
        .source_of(&format!("vault.{field}"))
        .expect("the key is set");
    assert_hidden("source_of", &format!("{source_of} {source_of:?}"));
}

#[test]
fn an_option_of_a_secret() {
    secret_stays_hidden_in("maybe");
}

#[test]
fn a_boxed_secret() {
    secret_stays_hidden_in("boxed");
}

#[test]
fn a_vec_of_secrets() {
    secret_stays_hidden_in("list");
}

#[test]
fn a_vec_deque_of_secrets() {
    secret_stays_hidden_in("deque");
}

#[test]
fn an_array_of_secrets() {
    secret_stays_hidden_in("array");
}

#[test]
fn a_btree_map_of_secrets() {
    secret_stays_hidden_in("ordered");
}

#[test]
fn a_hash_map_of_secrets() {
    secret_stays_hidden_in("hashed");
}

#[test]
fn a_tuple_with_a_secret() {
    secret_stays_hidden_in("pair");
}

#[test]
fn a_vec_of_optional_secrets() {
    secret_stays_hidden_in("nested");
}

#[test]
fn a_vec_of_sections_with_secrets() {
    secret_stays_hidden_in("routes");
}

#[test]
fn a_map_of_sections_with_secrets() {
    secret_stays_hidden_in("by_name");
}

#[test]
fn an_optional_section_with_secrets() {
    secret_stays_hidden_in("fallback");
}

#[test]
fn a_vec_of_secrets_behind_an_alias() {
    secret_stays_hidden_in("pins");
}

#[test]
fn what_is_not_secret_in_a_list_of_sections_still_shows() {
    let dir = ConfigDir::new();
    dir.write(
        "vault.toml",
        "[vault]\nroutes = [{ path = \"/old\", token = 1 }]\n",
    );
    let accessor = EaCAccessor::builder()
        .section::<Vault>()
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();
    dir.write(
        "vault.toml",
        "[vault]\nroutes = [{ path = \"/new\", token = 2 }]\n",
    );
    let preview = accessor.preview(Candidate::Sources);
    insta::assert_snapshot!(preview.diff.to_string(), @r#"~ vault.routes: [{"path":"/old","token":"[redacted]"}] → [{"path":"/new","token":"[redacted]"}]  [safe: value changed]"#);
}

#[test]
fn a_preview_never_tells_whether_a_list_of_secrets_was_guessed() {
    let dir = ConfigDir::new();
    dir.write("vault.toml", &format!("[vault]\nlist = [1, {OLD}]\n"));
    let accessor = EaCAccessor::builder()
        .section::<Vault>()
        .source(Dir::new(dir.path()))
        .build()
        .unwrap();
    let report = |second: u32| {
        let overlay = serde_json::json!({"vault": {"list": [1, second]}});
        serde_json::to_string(&accessor.preview(Candidate::Overlay(overlay))).unwrap()
    };
    let (right, wrong) = (report(OLD), report(NEW));
    assert_eq!(right, wrong);
    assert_hidden("the preview", &right);
}
