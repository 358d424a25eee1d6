use eac_accessor::EaCSection;
use serde::Deserialize;

#[derive(Deserialize, EaCSection)]
struct Limits {
    max_body_bytes: u64,
}

fn main() {}
