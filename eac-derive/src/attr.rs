//! Reading `#[eac(...)]`, and the `#[serde(...)]` attributes that decide a field's key.
//!
//! Every `#[eac]` key is accepted in every place here; `valid.rs` says which place is
//! wrong, so that the message can name the right one.

use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, ExprPath, Lit, LitStr, Meta, Token};

use crate::case::RenameRule;
use crate::errors::Errors;

/// The `#[eac(...)]` keys found on the struct or on one field, each with the tokens the
/// user wrote, for spans.
#[derive(Default)]
pub(crate) struct Attrs {
    /// `path = "server.http"`: the key as written, and the literal.
    pub(crate) path: Option<(syn::Path, LitStr)>,
    /// `validate = "checks::http"`: the key, the literal, and the function it names.
    pub(crate) validate: Option<(syn::Path, ExprPath)>,
    /// `secret`.
    pub(crate) secret: Option<syn::Path>,
    /// `restart`: the field is read only at start; a change needs a restart to apply.
    pub(crate) restart: Option<syn::Path>,
    /// `debug`: generate a `Debug` that redacts the secret fields.
    pub(crate) debug: Option<syn::Path>,
    /// `allow_unknown_keys`: keys no field owns are ignored, not rejected.
    pub(crate) allow_unknown_keys: Option<syn::Path>,
}

const KEYS: &str = "`path`, `validate`, `debug` and `allow_unknown_keys` on the struct, \
    `secret` and `restart` on a field";

/// Reads every `#[eac(...)]` in `attrs`; a malformed one is reported and skipped.
pub(crate) fn eac(attrs: &[Attribute], errors: &mut Errors) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("eac")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let key = meta.path.clone();
            if key.is_ident("path") {
                let lit: LitStr = meta.value()?.parse()?;
                set(&mut out.path, (key.clone(), lit), &key, "path")
            } else if key.is_ident("validate") {
                let lit: LitStr = meta.value()?.parse()?;
                let function = lit.parse::<ExprPath>().map_err(|_| {
                    syn::Error::new_spanned(
                        &lit,
                        "#[eac(validate)] must name a function, like \"crate::checks::http\"",
                    )
                })?;
                set(&mut out.validate, (key.clone(), function), &key, "validate")
            } else if key.is_ident("secret") {
                flag(&meta)?;
                set(&mut out.secret, key.clone(), &key, "secret")
            } else if key.is_ident("restart") {
                flag(&meta)?;
                set(&mut out.restart, key.clone(), &key, "restart")
            } else if key.is_ident("debug") {
                flag(&meta)?;
                set(&mut out.debug, key.clone(), &key, "debug")
            } else if key.is_ident("allow_unknown_keys") {
                flag(&meta)?;
                set(
                    &mut out.allow_unknown_keys,
                    key.clone(),
                    &key,
                    "allow_unknown_keys",
                )
            } else {
                let name = key.get_ident().map_or_else(
                    || quote::ToTokens::to_token_stream(&key).to_string(),
                    ToString::to_string,
                );
                Err(meta.error(format_args!(
                    "unknown attribute `#[eac({name})]`; eac knows {KEYS}"
                )))
            }
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    out
}

/// A key that is there or not, like `secret`: `secret = true` is refused.
fn flag(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        return Ok(());
    }
    let name = quote::ToTokens::to_token_stream(&meta.path);
    Err(meta.error(format_args!(
        "#[eac({name})] takes no value: write `#[eac({name})]`"
    )))
}

fn set<T>(slot: &mut Option<T>, value: T, key: &syn::Path, name: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            key,
            format_args!("duplicate #[eac({name})]"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// What `#[serde(...)]` on the struct says about field keys.
#[derive(Default)]
pub(crate) struct SerdeContainer {
    pub(crate) rename_all: Option<RenameRule>,
}

/// What `#[serde(...)]` on a field says about its key.
#[derive(Default)]
pub(crate) struct SerdeField {
    /// The key it is deserialized from, when renamed.
    pub(crate) rename: Option<String>,
    /// `flatten`: its own fields sit beside the struct's, under no key of their own.
    pub(crate) flatten: bool,
}

// serde reports its own malformed attributes; here anything unexpected is skipped.

pub(crate) fn serde_container(attrs: &[Attribute]) -> SerdeContainer {
    let mut out = SerdeContainer::default();
    for meta in serde_metas(attrs) {
        if meta.path().is_ident("rename_all")
            && let Some(rule) = deserialize_name(&meta).and_then(|n| RenameRule::from_name(&n))
        {
            out.rename_all = Some(rule);
        }
    }
    out
}

pub(crate) fn serde_field(attrs: &[Attribute]) -> SerdeField {
    let mut out = SerdeField::default();
    for meta in serde_metas(attrs) {
        if meta.path().is_ident("rename") {
            if let Some(name) = deserialize_name(&meta) {
                out.rename = Some(name);
            }
        } else if meta.path().is_ident("flatten") {
            out.flatten = true;
        }
    }
    out
}

fn serde_metas(attrs: &[Attribute]) -> Vec<Meta> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|a| {
            a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .collect()
}

/// The name for deserializing in `key = "name"` or `key(deserialize = "name", ...)`.
fn deserialize_name(meta: &Meta) -> Option<String> {
    match meta {
        Meta::NameValue(nv) => string(&nv.value),
        Meta::List(list) => list
            .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .ok()?
            .into_iter()
            .find_map(|inner| match inner {
                Meta::NameValue(nv) if nv.path.is_ident("deserialize") => string(&nv.value),
                _ => None,
            }),
        Meta::Path(_) => None,
    }
}

fn string(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        _ => None,
    }
}
