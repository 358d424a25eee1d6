use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Port(u16);

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Nothing;

fn main() {}
