//! Generic sections: lenses, secrets and `Debug` work per instance.

use eac_accessor::lens::Lens;
use eac_accessor::source::{Format, Memory};
use eac_accessor::{EaCAccessor, EaCSection};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(debug)]
#[eac(path = "pool")]
struct Pool<T, const N: usize>
where
    T: Clone,
{
    size: u32,
    target: Target<T>,
}

#[derive(Deserialize, JsonSchema, EaCSection)]
#[eac(debug)]
struct Target<T> {
    #[eac(secret)]
    address: T,
    weight: u8,
}

fn main() -> Result<(), eac_accessor::Errors> {
    assert_eq!(
        <Pool<String, 3>>::lens().target().address().key_path(),
        "pool.target.address"
    );
    assert_eq!(<Target<String>>::secret_paths(), ["address"]);

    let doc = "[pool]\nsize = 4\n[pool.target]\naddress = \"10.0.0.1\"\nweight = 2\n";
    let accessor = EaCAccessor::builder()
        .section::<Pool<String, 3>>()
        .source(Memory::new("app", Format::Toml, doc))
        .build()?;
    let snapshot = accessor.load();
    assert_eq!(
        <Pool<String, 3>>::lens().target().address().get(&snapshot),
        "10.0.0.1"
    );
    assert_eq!(*<Pool<String, 3>>::lens().size().get(&snapshot), 4);
    assert_eq!(
        format!("{:?}", snapshot.section::<Pool<String, 3>>()),
        "Pool { size: 4, target: Target { address: [redacted], weight: 2 } }"
    );
    Ok(())
}
