use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(validate = "check the limits")]
struct Limits {
    max_body_bytes: u64,
}

fn main() {}
