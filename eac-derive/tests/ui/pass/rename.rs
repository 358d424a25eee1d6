//! A lens's key path follows the name serde reads, not the Rust name.

use eac_accessor::lens::Lens;
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "server.http")]
#[serde(rename_all = "camelCase")]
struct Http {
    #[serde(rename = "listen-port")]
    port: u16,
    max_connections: u32,
    #[serde(rename(serialize = "ignored", deserialize = "keepAliveSecs"))]
    keep_alive: u64,
    r#type: String,
    #[eac(secret)]
    #[serde(rename = "apiKey")]
    api_key: String,
}

fn main() -> Result<(), eac_accessor::Errors> {
    assert_eq!(Http::lens().port().key_path(), "server.http.listen-port");
    assert_eq!(
        Http::lens().max_connections().key_path(),
        "server.http.maxConnections"
    );
    assert_eq!(
        Http::lens().keep_alive().key_path(),
        "server.http.keepAliveSecs"
    );
    assert_eq!(Http::lens().r#type().key_path(), "server.http.type");
    assert_eq!(Http::secret_paths(), ["apiKey"]);

    let doc = r#"
        [server.http]
        listen-port = 80
        maxConnections = 10
        keepAliveSecs = 5
        type = "h2"
        apiKey = "k"
    "#;
    let accessor = EaCAccessor::builder()
        .section::<Http>()
        .source(Memory::new("app", Format::Toml, doc))
        .build()?;
    assert_eq!(*Http::lens().port().get(&accessor.load()), 80);
    assert_eq!(Http::lens().r#type().get(&accessor.load()), "h2");
    assert_eq!(accessor.secret_paths(), ["server.http.apiKey"]);
    Ok(())
}
