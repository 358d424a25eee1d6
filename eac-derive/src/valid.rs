//! The checks that need the whole input: the shape of the type, where each attribute
//! may go, and what a section path may look like.

use syn::{Data, Fields, GenericParam};

use crate::ast::Input;
use crate::errors::Errors;

const SHAPE: &str = "#[derive(EaCSection)] needs a struct with named fields, one per key";

pub(crate) fn check(input: &Input<'_>, errors: &mut Errors) {
    check_shape(input, errors);
    check_generics(input, errors);
    check_container(input, errors);
    for field in input.fields.iter().flatten() {
        let misplaced = [
            field.attrs.path.as_ref().map(|(key, _)| key),
            field.attrs.validate.as_ref().map(|(key, _)| key),
            field.attrs.debug.as_ref(),
            field.attrs.allow_unknown_keys.as_ref(),
        ];
        for key in misplaced.into_iter().flatten() {
            errors.push(syn::Error::new_spanned(
                key,
                format_args!(
                    "#[eac({})] belongs on the struct, not on a field",
                    quote::ToTokens::to_token_stream(key)
                ),
            ));
        }
        if let Err(error) = field.secret_places() {
            errors.push(error);
        }
        if let (Some(secret), true) = (&field.attrs.secret, field.flatten) {
            errors.push(syn::Error::new_spanned(
                secret,
                "#[eac(secret)] on a #[serde(flatten)] field would hide the whole section; \
                 mark the secret fields of the flattened struct instead",
            ));
        }
    }
}

fn check_shape(input: &Input<'_>, errors: &mut Errors) {
    let original = input.original;
    let error = match &original.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(_) => return,
            Fields::Unnamed(fields) => syn::Error::new_spanned(
                fields,
                format_args!("{SHAPE}; a tuple struct has no key names"),
            ),
            Fields::Unit => syn::Error::new_spanned(
                &original.ident,
                format_args!("{SHAPE}; a unit struct has no keys"),
            ),
        },
        Data::Enum(data) => syn::Error::new_spanned(
            data.enum_token,
            format_args!("{SHAPE}, not an enum; an enum can be the type of a field"),
        ),
        Data::Union(data) => {
            syn::Error::new_spanned(data.union_token, format_args!("{SHAPE}, not a union"))
        }
    };
    errors.push(error);
}

fn check_generics(input: &Input<'_>, errors: &mut Errors) {
    for param in &input.original.generics.params {
        if let GenericParam::Lifetime(lifetime) = param {
            errors.push(syn::Error::new_spanned(
                lifetime,
                "a section owns its data (it lives in every snapshot): \
                 lifetime parameters are not supported",
            ));
        }
    }
}

fn check_container(input: &Input<'_>, errors: &mut Errors) {
    if let Some(restart) = &input.attrs.restart {
        errors.push(syn::Error::new_spanned(
            restart,
            "#[eac(restart)] marks a field, not the struct: put it on each field read only at start",
        ));
    }
    if let Some(secret) = &input.attrs.secret {
        errors.push(syn::Error::new_spanned(
            secret,
            "#[eac(secret)] marks a field, not the struct: put it on each field that holds a secret",
        ));
    }
    if let Some((_, lit)) = &input.attrs.path
        && !is_dotted_key(&lit.value())
    {
        errors.push(syn::Error::new_spanned(
            lit,
            "#[eac(path)] must be a dotted key like \"server.http\": \
             letters, digits, `_` and `-`, separated by single dots",
        ));
    }
}

/// `server.http`, `limits`, `feature-flags.v2`: non-empty segments joined by dots.
fn is_dotted_key(path: &str) -> bool {
    path.split('.').all(|segment| {
        !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::is_dotted_key;

    #[test]
    fn dotted_keys() {
        for ok in ["limits", "server.http", "feature-flags.v2", "a_b.c1"] {
            assert!(is_dotted_key(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "server.",
            ".http",
            "server..http",
            "server http",
            "a/b",
            "é",
        ] {
            assert!(!is_dotted_key(bad), "{bad:?}");
        }
    }
}
