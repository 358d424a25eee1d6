use eac_accessor::EaCSection;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
struct Tls {
    enabled: bool,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Server {
    tls: Tls,
}

fn main() {
    // `Tls` does not derive `EaCSection`, so its lens has no field methods.
    let _ = Server::lens().tls().enabled();
}
