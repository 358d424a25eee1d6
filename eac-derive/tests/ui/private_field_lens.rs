mod config {
    use eac_accessor::EaCSection;
    use schemars::JsonSchema;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema, EaCSection)]
    pub struct Upstream {
        pub url: String,
        api_key: String,
    }
}

fn main() {
    let _ = config::Upstream::lens().url();
    // A lens gives the access its field gives: none, outside the module.
    let _ = config::Upstream::lens().api_key();
}
