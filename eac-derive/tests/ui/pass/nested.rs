//! Lenses compose through nested sections, and read from one snapshot.

use eac_accessor::lens::Lens;
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(path = "app")]
struct App {
    server: Server,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Server {
    http: Http,
    name: String,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Http {
    port: u16,
}

fn main() -> Result<(), eac_accessor::Errors> {
    let doc = "[app.server]\nname = \"edge\"\n[app.server.http]\nport = 8080\n";
    let accessor = EaCAccessor::builder()
        .section::<App>()
        .source(Memory::new("app", Format::Toml, doc))
        .build()?;
    let snapshot = accessor.load();

    let port = App::lens().server().http().port();
    assert_eq!(port.key_path(), "app.server.http.port");
    assert_eq!(*port.get(&snapshot), 8080);
    assert_eq!(App::lens().server().name().get(&snapshot), "edge");
    // Each level is a lens on its own.
    let http = App::lens().server().http();
    assert_eq!(http.key_path(), "app.server.http");
    assert_eq!(http.get(&snapshot).port, 8080);
    Ok(())
}
