//! The derive input as eac sees it: the struct, its attributes, and each field's key,
//! keeping the original tokens for spans.

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, PathArguments, Type, Visibility};

use crate::attr::{self, Attrs};
use crate::case;
use crate::errors::Errors;

pub(crate) struct Input<'a> {
    pub(crate) original: &'a DeriveInput,
    pub(crate) attrs: Attrs,
    /// The named fields; `None` for anything that is not a struct with named fields.
    pub(crate) fields: Option<Vec<Field<'a>>>,
}

pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) vis: &'a Visibility,
    pub(crate) attrs: Attrs,
    /// The key serde reads the field from; empty for a `#[serde(flatten)]` field.
    pub(crate) key: String,
    pub(crate) flatten: bool,
}

impl<'a> Input<'a> {
    /// Reads the attributes of the struct and its fields; malformed ones go to `errors`.
    pub(crate) fn from_syn(original: &'a DeriveInput, errors: &mut Errors) -> Input<'a> {
        let attrs = attr::eac(&original.attrs, errors);
        let rename_all = attr::serde_container(&original.attrs).rename_all;
        let fields = match &original.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(
                    named
                        .named
                        .iter()
                        .filter_map(|f| Field::from_syn(f, rename_all, errors))
                        .collect(),
                ),
                Fields::Unnamed(_) | Fields::Unit => None,
            },
            Data::Enum(_) | Data::Union(_) => None,
        };
        Input {
            original,
            attrs,
            fields,
        }
    }

    pub(crate) fn ident(&self) -> &'a Ident {
        &self.original.ident
    }

    /// The section's dotted key: `#[eac(path)]`, else the type name in snake_case.
    pub(crate) fn path(&self) -> String {
        match &self.attrs.path {
            Some((_, lit)) => lit.value(),
            None => case::snake_case(&unraw(self.ident())),
        }
    }
}

impl<'a> Field<'a> {
    fn from_syn(
        original: &'a syn::Field,
        rename_all: Option<case::RenameRule>,
        errors: &mut Errors,
    ) -> Option<Field<'a>> {
        let ident = original.ident.as_ref()?;
        let serde = attr::serde_field(&original.attrs);
        let name = unraw(ident);
        let key = if serde.flatten {
            String::new()
        } else if let Some(rename) = serde.rename {
            rename
        } else if let Some(rule) = rename_all {
            rule.apply_to_field(&name)
        } else {
            name
        };
        Some(Field {
            ident,
            ty: &original.ty,
            vis: &original.vis,
            attrs: attr::eac(&original.attrs, errors),
            key,
            flatten: serde.flatten,
        })
    }

    pub(crate) fn is_secret(&self) -> bool {
        self.attrs.secret.is_some()
    }

    /// Where secrets may sit inside the field's value, found from its type as written:
    /// through `Option`, `Box`, `Arc`, `Rc`, lists, sets, arrays, map values and tuples
    /// down to a `Secret<T>`, or to a type asked at run time whether it is a section with
    /// secrets (or a `Secret` behind an alias).
    ///
    /// An error when a `Secret` sits where its key cannot be told: inside another generic
    /// type, or as a map key.
    pub(crate) fn secret_places(&self) -> syn::Result<Vec<Place<'a>>> {
        let mut places = Vec::new();
        if !self.is_secret() {
            walk(self, self.ty, &mut Vec::new(), &mut places)?;
        }
        Ok(places)
    }

    /// The dotted key of a place: the field's key, then the place's own segments.
    pub(crate) fn key_of(&self, place: &Place<'_>) -> String {
        let mut segments: Vec<&str> = Vec::new();
        if !self.key.is_empty() {
            segments.push(&self.key);
        }
        segments.extend(place.segments.iter().map(String::as_str));
        segments.join(".")
    }
}

/// A place inside a field's value where secrets may be.
pub(crate) struct Place<'a> {
    /// The segments below the field's key: `*` for any element or map key, a number for
    /// a tuple's member.
    pub(crate) segments: Vec<String>,
    pub(crate) what: What<'a>,
}

pub(crate) enum What<'a> {
    /// A `Secret<T>`: the place itself is secret.
    Secret,
    /// Any other type: its secrets, if it is a section (or an aliased `Secret`).
    Nested(&'a Type),
}

/// The types a value passes through unchanged, as serde writes them.
const TRANSPARENT: &[&str] = &["Option", "Box", "Arc", "Rc"];
/// The types whose every element sits at `*`.
const LISTS: &[&str] = &[
    "Vec",
    "VecDeque",
    "LinkedList",
    "BinaryHeap",
    "HashSet",
    "BTreeSet",
    "IndexSet",
];
/// The types whose every value sits at `*` (under its key).
const MAPS: &[&str] = &["HashMap", "BTreeMap", "IndexMap"];

fn walk<'a>(
    field: &Field<'a>,
    ty: &'a Type,
    segments: &mut Vec<String>,
    out: &mut Vec<Place<'a>>,
) -> syn::Result<()> {
    let mut below = |segment: String, ty: &'a Type, out: &mut Vec<Place<'a>>| {
        segments.push(segment);
        let found = walk(field, ty, segments, out);
        segments.pop();
        found
    };
    match ty {
        Type::Group(group) => return walk(field, &group.elem, segments, out),
        Type::Paren(paren) => return walk(field, &paren.elem, segments, out),
        Type::Array(array) => return below("*".to_owned(), &array.elem, out),
        Type::Slice(slice) => return below("*".to_owned(), &slice.elem, out),
        Type::Tuple(tuple) => {
            for (i, elem) in tuple.elems.iter().enumerate() {
                below(i.to_string(), elem, out)?;
            }
            return Ok(());
        }
        Type::Path(path) if path.qself.is_none() => {
            if let Some(last) = path.path.segments.last() {
                let name = last.ident.to_string();
                let args = type_args(&last.arguments);
                if name == "Secret" {
                    out.push(Place {
                        segments: segments.clone(),
                        what: What::Secret,
                    });
                    return Ok(());
                }
                match args.as_slice() {
                    [inner] if TRANSPARENT.contains(&name.as_str()) => {
                        return walk(field, inner, segments, out);
                    }
                    [item, ..] if LISTS.contains(&name.as_str()) => {
                        return below("*".to_owned(), item, out);
                    }
                    [key, value, ..] if MAPS.contains(&name.as_str()) => {
                        if holds_secret(key) {
                            return Err(syn::Error::new_spanned(
                                key,
                                format_args!(
                                    "field `{}`: a map key cannot be secret, as keys show in \
                                     every path eac reports; mark the field `#[eac(secret)]` \
                                     to hide the whole map",
                                    unraw(field.ident)
                                ),
                            ));
                        }
                        return below("*".to_owned(), value, out);
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if holds_secret(ty) {
        return Err(syn::Error::new_spanned(
            ty,
            format_args!(
                "field `{}`: eac cannot tell where the `Secret` inside this type sits in the \
                 document, so it could not keep it out of errors and diffs; put `Secret<T>` \
                 directly, or inside `Option`, `Box`, `Arc`, `Rc`, a list, a set, an array, \
                 a map's values or a tuple, or mark the field `#[eac(secret)]` to hide it whole",
                unraw(field.ident),
            ),
        ));
    }
    out.push(Place {
        segments: segments.clone(),
        what: What::Nested(ty),
    });
    Ok(())
}

/// The type arguments of `Name<A, B>`, lifetimes and constants left out.
fn type_args(arguments: &PathArguments) -> Vec<&Type> {
    match arguments {
        PathArguments::AngleBracketed(angle) => angle
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
        PathArguments::None | PathArguments::Parenthesized(_) => Vec::new(),
    }
}

/// Whether `Secret` is named anywhere in `ty`.
fn holds_secret(ty: &Type) -> bool {
    fn any(tokens: proc_macro2::TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            TokenTree::Ident(ident) => ident == "Secret",
            TokenTree::Group(group) => any(group.stream()),
            TokenTree::Punct(_) | TokenTree::Literal(_) => false,
        })
    }
    any(ty.to_token_stream())
}

/// An identifier as a name, without the `r#` of a raw identifier.
pub(crate) fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    match name.strip_prefix("r#") {
        Some(bare) => bare.to_owned(),
        None => name,
    }
}
