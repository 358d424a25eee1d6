use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(restart)]
struct Server {
    port: u16,
}

fn main() {}
