use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

// Two `Debug`s: the derived one and the redacting one asked for with `#[eac(debug)]`.
// The conflict points at `debug`: drop it (and type secrets `Secret<T>`), or drop the
// derive.
#[derive(Debug, Deserialize, JsonSchema, EaCSection)]
#[eac(debug)]
struct Upstream {
    #[eac(secret)]
    api_key: String,
}

fn main() {}
