//! The section the unit tests pin and read, from a document they can change.

use eac_accessor::EaCSection;
use eac_accessor::source::{Format, Memory};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct Greeting {
    pub(crate) message: String,
}

impl EaCSection for Greeting {
    const PATH: &'static str = "greeting";
}

/// A document in memory that sets the greeting to `message`.
pub(crate) fn greeting(message: &str) -> Memory {
    Memory::new(
        "m",
        Format::Toml,
        format!("[greeting]\nmessage = \"{message}\"\n"),
    )
}
