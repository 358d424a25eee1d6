use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(validate = "checks::limits")]
struct Limits {
    max_body_bytes: u64,
}

mod checks {
    pub fn limits(limits: &super::Limits) -> bool {
        limits.max_body_bytes > 0
    }
}

fn main() {}
