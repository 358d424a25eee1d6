//! The README's first example, reading the folder named on the command line: a `main`
//! that returns `Result<(), Errors>` and prints every problem when the config is wrong.
//!
//! Run it with `cargo run -p eac-examples --bin readme_first -- /etc/my-service`
//! (a folder of `*.toml`, `*.yaml`, `*.json` files with a `[limits]` section).

use eac_accessor::prelude::*;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema, EaCSection)]
struct Limits {
    #[schemars(range(min = 1, max = 16_777_216))]
    max_body_bytes: u64,
}

fn main() -> Result<(), Errors> {
    let dir = std::env::args_os()
        .nth(1)
        .unwrap_or_else(|| "/etc/my-service".into());
    let config = EaCAccessor::builder()
        .section::<Limits>()
        .source(Dir::new(dir)) // *.toml, *.yaml, *.json in name order
        .source(Env::prefixed("APP_")) // APP_LIMITS__MAX_BODY_BYTES=2048 wins
        .build()?; // version 1, or every error at once
    let max = *Limits::lens().max_body_bytes().get(&config.load()); // one atomic load
    println!("max body: {max} bytes");
    Ok(())
}
