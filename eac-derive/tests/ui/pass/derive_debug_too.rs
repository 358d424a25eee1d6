use eac_accessor::{EaCSection, Secret};
use schemars::JsonSchema;
use serde::Deserialize;

// `Debug` is the user's to derive; a secret typed `Secret<T>` prints `[redacted]`.
#[derive(Debug, Deserialize, JsonSchema, EaCSection)]
struct Upstream {
    url: String,
    api_key: Secret<String>,
}

fn main() {
    let upstream = Upstream {
        url: "http://up".to_owned(),
        api_key: Secret::from("hunter2".to_owned()),
    };
    assert_eq!(
        format!("{upstream:?}"),
        r#"Upstream { url: "http://up", api_key: [redacted] }"#
    );
}
