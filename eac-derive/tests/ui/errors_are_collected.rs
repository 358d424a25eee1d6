use eac_accessor::lens::Lens;
use eac_accessor::{EaCAccessor, EaCSection};
use schemars::JsonSchema;
use serde::Deserialize;

// Three mistakes, three errors, and nothing else: the code below that uses the section
// still compiles against the stub the derive emits.
#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "server http", secret)]
struct Http {
    #[eac(secret = true)]
    port: u16,
}

fn main() {
    let _ = EaCAccessor::builder().section::<Http>();
    let _ = Http::lens().port().key_path();
}
