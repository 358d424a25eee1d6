use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "server..http")]
struct Http {
    port: u16,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "server/http")]
struct Https {
    port: u16,
}

fn main() {}
