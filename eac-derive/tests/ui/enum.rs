use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
enum Mode {
    Fast,
    Safe,
}

fn main() {}
