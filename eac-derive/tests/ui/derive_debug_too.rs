use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

// The derive writes a `Debug` that hides secrets; a derived one would show them.
#[derive(Debug, Deserialize, JsonSchema, EaCSection)]
struct Upstream {
    #[eac(secret)]
    api_key: String,
}

fn main() {}
