use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

// Both misspellings are reported at once.
#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(pth = "server.http")]
struct Http {
    #[eac(secrets)]
    token: String,
}

fn main() {}
