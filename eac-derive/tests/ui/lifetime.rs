use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Greeting<'a> {
    message: &'a str,
}

fn main() {}
