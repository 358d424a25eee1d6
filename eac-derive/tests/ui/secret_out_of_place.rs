use std::collections::HashMap;

use eac_accessor::{EaCSection, Secret};
use schemars::JsonSchema;
use serde::Deserialize;

/// A wrapper of the user's own: the derive cannot tell where its content sits.
#[derive(Deserialize, JsonSchema)]
struct Labelled<T> {
    label: String,
    value: T,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Upstream {
    url: String,
    // Both fields are reported, each by name.
    api_key: Labelled<Secret<String>>,
    by_token: HashMap<Secret<String>, String>,
    // Hidden whole: allowed.
    #[eac(secret)]
    whole: Labelled<Secret<String>>,
}

fn main() {}
