//! Fields named like the methods of `Lens` or `Clone` still get their lenses.

use eac_accessor::EaCSection;
use eac_accessor::lens::Lens;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema, EaCSection)]
struct Awkward {
    get: u8,
    key_path: u8,
    clone: u8,
    lens: u8,
    map: u8,
    #[serde(skip)]
    skipped: u8,
}

fn main() {
    // The field's lens wins over the trait method of the same name on the section's
    // lens; the trait method stays reachable by its full path.
    assert_eq!(Awkward::lens().get().key_path(), "awkward.get");
    assert_eq!(Awkward::lens().key_path().key_path(), "awkward.key_path");
    assert_eq!(Awkward::lens().clone().key_path(), "awkward.clone");
    assert_eq!(Awkward::lens().lens().key_path(), "awkward.lens");
    assert_eq!(Awkward::lens().map().key_path(), "awkward.map");
    assert_eq!(Lens::key_path(&Awkward::lens()), "awkward");
    let _ = Awkward::lens().skipped();
}
