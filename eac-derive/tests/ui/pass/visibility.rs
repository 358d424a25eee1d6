//! The generated items have the visibility of what they mirror, without any warning.

#![deny(warnings, missing_docs, missing_debug_implementations, unreachable_pub)]

//! A crate with sections of every visibility.

/// The sections.
pub mod config {
    use eac_accessor::EaCSection;
    use schemars::JsonSchema;
    use serde::Deserialize;

    /// Public, with private and restricted fields.
    #[derive(Deserialize, JsonSchema, EaCSection)]
    #[eac(debug)]
    pub struct Public {
        /// Public.
        pub url: String,
        pub(crate) retries: u8,
        tls: Tls,
    }

    /// Visible in the crate only, with public fields.
    #[derive(Deserialize, JsonSchema, EaCSection)]
    #[eac(debug)]
    pub(crate) struct Crate {
        pub port: u16,
        pub(super) host: String,
    }

    /// Private, used as the type of a private field.
    #[derive(Deserialize, JsonSchema, EaCSection)]
    #[eac(debug)]
    struct Tls {
        pub enabled: bool,
    }

    pub(crate) fn tls_path() -> String {
        use eac_accessor::lens::Lens;
        Public::lens().tls().enabled().key_path()
    }
}

use eac_accessor::lens::Lens;

fn main() {
    assert_eq!(config::Public::lens().url().key_path(), "public.url");
    assert_eq!(
        config::Public::lens().retries().key_path(),
        "public.retries"
    );
    assert_eq!(config::Crate::lens().port().key_path(), "crate.port");
    assert_eq!(config::Crate::lens().host().key_path(), "crate.host");
    assert_eq!(config::tls_path(), "public.tls.enabled");
}
