//! The derive input as eac sees it: the struct, its attributes, and each field's key,
//! keeping the original tokens for spans.

use syn::{Data, DeriveInput, Fields, Ident, Type, Visibility};

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
}

/// An identifier as a name, without the `r#` of a raw identifier.
pub(crate) fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    match name.strip_prefix("r#") {
        Some(bare) => bare.to_owned(),
        None => name,
    }
}
