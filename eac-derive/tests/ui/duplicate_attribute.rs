use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "limits")]
#[eac(path = "server.limits")]
struct Limits {
    #[eac(secret, secret)]
    max_body_bytes: u64,
}

fn main() {}
