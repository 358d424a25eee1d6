//! `#[derive(EaCSection)]` for eac (`eac-accessor`): a configuration
//! section's path, JSON Schema, secrets, typed lenses and field subscriptions.
//!
//! Use it through `eac_accessor`, which re-exports it beside the trait of the same name:
//! `use eac_accessor::EaCSection;` brings both. See [`macro@EaCSection`].

mod ast;
mod attr;
mod case;
mod errors;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Makes a struct a configuration section: path, schema, secrets, validation, lenses.
///
/// ```
/// use eac_accessor::lens::Lens;
/// use eac_accessor::source::{Format, Memory};
/// use eac_accessor::{EaCAccessor, EaCSection, Secret};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// /// The upstream service this one calls.
/// #[derive(Debug, Deserialize, JsonSchema, EaCSection)]
/// #[eac(path = "upstream")]
/// struct Upstream {
///     /// Where to send requests.
///     url: String,
///     /// Sent as a bearer token; never shown in errors, diffs, logs or `Debug`.
///     api_key: Secret<String>,
/// }
///
/// let accessor = EaCAccessor::builder()
///     .section::<Upstream>()
///     .source(Memory::new("app", Format::Toml, "[upstream]\nurl = \"http://up\"\napi_key = \"k\"\n"))
///     .build()?;
///
/// let url = Upstream::lens().url();
/// assert_eq!(url.key_path(), "upstream.url");
/// assert_eq!(url.get(&accessor.load()), "http://up");
/// assert_eq!(Upstream::secret_paths(), ["api_key"]);
/// assert_eq!(
///     format!("{:?}", accessor.load().section::<Upstream>()),
///     r#"Upstream { url: "http://up", api_key: [redacted] }"#,
/// );
/// # Ok::<(), eac_accessor::Errors>(())
/// ```
///
/// The struct must also derive (or implement) `serde::Deserialize` and
/// `schemars::JsonSchema`: deserialization is serde's, the schema is schemars'
/// (`#[schemars(range(..))]`, `length`, `regex` and doc comments all apply).
///
/// # Attributes
///
/// | attribute | on | meaning |
/// |---|---|---|
/// | `#[eac(path = "server.http")]` | struct | the section's dotted key; default: the type name in snake_case (`HttpConfig` → `http_config`) |
/// | `#[eac(validate = "path::to::check")]` | struct | a check the schema cannot express: `fn(&Self) -> Result<(), eac_accessor::FieldErrors>` |
/// | `#[eac(debug)]` | struct | also generate `Debug`, printing `[redacted]` for secret fields (instead of `#[derive(Debug)]`) |
/// | `#[eac(allow_unknown_keys)]` | struct | keys in the section that no field owns are ignored (dropped, never shown) instead of rejecting the candidate: `EaCSection::ALLOW_UNKNOWN_KEYS` |
/// | `#[eac(secret)]` | field | the field's value is never shown: `EaCSection::secret_paths()` lists it; the `Debug` of `#[eac(debug)]` prints `[redacted]` |
/// | `#[eac(restart)]` | field | the field is read only at start (a listen port, a pool size): a change is published, classified `restart` in diffs and previews, and listed in `Status::restart_needed` until the process restarts: `EaCSection::restart_paths()` lists it |
///
/// Keys follow serde: `#[serde(rename = "..")]` and `#[serde(rename_all = "..")]` change
/// the key a field is read from, and so its secret path and its lens's key path;
/// a `#[serde(flatten)]` field adds no key of its own.
///
/// # What it generates
///
/// - `impl EaCSection`: `PATH`, `ALLOW_UNKNOWN_KEYS`, `secret_paths()`, `validate()`.
///   The secret paths are the `#[eac(secret)]` fields, every `eac_accessor::Secret<T>`
///   in a field's type, and the secrets of every section in a field's type, under that
///   field's key. The derive looks through `Option`, `Box`, `Arc` and `Rc` (same key),
///   lists, sets, arrays and map values (`*`: every element, every key) and tuples
///   (`0`, `1`, …): `Vec<Secret<String>>` gives `keys.*`, `BTreeMap<String, Route>`
///   gives `routes.*.token`. A `Secret` anywhere else in a field's type (inside a
///   generic type of your own, or as a map key) is a compile error naming the field:
///   mark such a field `#[eac(secret)]` to hide it whole.
/// - `Type::lens()`: a lens on the whole section with one method per field, each
///   returning a lens on that field. A field whose type also derives `EaCSection` gives a
///   lens with that type's field methods, so lenses compose:
///   `App::lens().http().port().key_path() == "app.http.port"`. A lens method has the
///   visibility of its field. See `eac_accessor::lens`.
/// - With `#[eac(debug)]` only, `Debug`, printing every field as `#[derive(Debug)]`
///   would, except that secret fields print `[redacted]`. Without it, derive `Debug` as
///   usual and type secret fields `eac_accessor::Secret<T>`, whose `Debug` and
///   `Display` print `[redacted]`.
///
/// Generic structs are supported (each instance is a section at the same path);
/// lifetime parameters are not. Enums, tuple structs and unit structs cannot be sections.
///
/// # Limitations
///
/// - Secrets are found by type, where the type is known: in a generic struct, a field
///   whose type is a type parameter (or holds one, like `Vec<T>`) does not bring the
///   secrets of what `T` becomes; a type alias hides the sections inside containers
///   (`type Routes = Vec<Route>`), though not a `Secret` directly inside `Option`, `Vec`,
///   `VecDeque`, `Box<[_]>`, an array, `HashMap` or `BTreeMap`. Mark such a field
///   `#[eac(secret)]` as a whole when it holds secrets.
/// - Lenses go through struct fields only, not into `Option`, collections or enums;
///   use `Lens::map` from there.
/// - The generated code names the crate `::eac_accessor`: depend on it under that name.
///
/// ```
/// use eac_accessor::lens::Lens;
/// use eac_accessor::{EaCSection, FieldErrors};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Deserialize, JsonSchema, EaCSection)]
/// #[eac(path = "server", validate = "check_server")]
/// struct Server {
///     http: Http,
///     #[serde(rename = "worker-threads")]
///     workers: u16,
/// }
///
/// #[derive(Deserialize, JsonSchema, EaCSection)]
/// struct Http {
///     #[schemars(range(min = 1))]
///     port: u16,
///     #[eac(secret)]
///     tls_key: Option<String>,
/// }
///
/// fn check_server(server: &Server) -> Result<(), FieldErrors> {
///     let mut errors = FieldErrors::new();
///     if server.workers == 0 {
///         errors.add("worker-threads", "at least one worker is needed");
///     }
///     errors.into_result()
/// }
///
/// assert_eq!(Server::lens().http().port().key_path(), "server.http.port");
/// assert_eq!(Server::lens().workers().key_path(), "server.worker-threads");
/// assert_eq!(Server::secret_paths(), ["http.tls_key"]);
/// ```
#[proc_macro_derive(EaCSection, attributes(eac))]
pub fn derive_eac_section(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
