use eac_accessor::EaCSection;
use schemars::JsonSchema;

#[derive(JsonSchema, EaCSection)]
struct Limits {
    max_body_bytes: u64,
}

fn main() {}
