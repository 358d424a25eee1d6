use eac_accessor::{EaCSection, FieldErrors};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Limits {
    #[eac(path = "limits.max")]
    max_body_bytes: u64,
    #[eac(validate = "check", debug)]
    request_timeout_ms: u64,
}

fn check(_: &Limits) -> Result<(), FieldErrors> {
    Ok(())
}

fn main() {}
