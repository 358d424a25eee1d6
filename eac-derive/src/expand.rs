//! The generated code: the `EaCSection` impl, the lenses and (with `#[eac(debug)]`) the
//! redacting `Debug`, all inside `const _: () = { ... };` and reaching eac only through
//! `::eac_accessor::__private`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, GenericParam, Ident, Visibility};

use crate::ast::{self, Field, Input, What};
use crate::errors::Errors;
use crate::valid;

pub(crate) fn derive(node: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let input = Input::from_syn(node, &mut errors);
    valid::check(&input, &mut errors);
    match errors.into_result() {
        Ok(()) => dummy(section(&input)),
        Err(error) => {
            // A stub keeps the user's other code compiling, so they see these errors only.
            let mut tokens = error.to_compile_error();
            tokens.extend(dummy(fallback(&input)));
            tokens
        }
    }
}

fn dummy(code: TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(
            non_upper_case_globals,
            non_camel_case_types,
            unused_qualifications,
            clippy::absolute_paths,
        )]
        const _: () = {
            use ::eac_accessor::__private as __eac;
            #code
        };
    }
}

/// The whole expansion, for an input that passed every check.
fn section(input: &Input<'_>) -> TokenStream {
    let fields = input.fields.as_deref().unwrap_or_default();
    let secrets = secret_paths(fields);
    let restarts = restart_paths(fields);
    let validate = input.attrs.validate.as_ref().map(|(_, function)| {
        let span = function.span();
        quote_spanned! {span=>
            fn validate(&self) -> __eac::Result<(), __eac::FieldErrors> {
                #function(self)
            }
        }
    });
    let allow_unknown_keys = input.attrs.allow_unknown_keys.as_ref().map(|_| {
        quote!(
            const ALLOW_UNKNOWN_KEYS: bool = true;
        )
    });
    let slot = slot(input);
    let section = impl_section(
        input,
        quote!(#allow_unknown_keys #secrets #restarts #validate #slot),
    );
    let lenses = lenses(input, fields);
    let debug = input.attrs.debug.is_some().then(|| debug(input, fields));
    quote!(#section #lenses #debug)
}

/// `__slot()`: a lookup hint of the type's own. Not for a generic type: a `static` in a
/// generic impl is one for all its instances, which would take turns overwriting it.
fn slot(input: &Input<'_>) -> Option<TokenStream> {
    input.original.generics.params.is_empty().then(|| {
        quote! {
            #[inline]
            fn __slot() -> __eac::Option<&'static ::core::sync::atomic::AtomicUsize> {
                static SLOT: ::core::sync::atomic::AtomicUsize =
                    ::core::sync::atomic::AtomicUsize::new(0);
                __eac::Option::Some(&SLOT)
            }
        }
    })
}

/// The least that keeps the user's code compiling after an error.
fn fallback(input: &Input<'_>) -> TokenStream {
    if input.original.generics.lifetimes().next().is_some() {
        // No impl can be right for a borrowed type: one would only add errors.
        return TokenStream::new();
    }
    let section = impl_section(input, TokenStream::new());
    let Some(fields) = input.fields.as_deref() else {
        return section;
    };
    let lenses = lenses(input, fields);
    let debug = input.attrs.debug.is_some().then(|| {
        let ident = input.ident();
        let name = ast::unraw(ident);
        let (impl_generics, ty_generics, where_clause) = input.original.generics.split_for_impl();
        quote! {
            impl #impl_generics __eac::fmt::Debug for #ident #ty_generics #where_clause {
                fn fmt(&self, f: &mut __eac::fmt::Formatter<'_>) -> __eac::fmt::Result {
                    f.debug_struct(#name).finish_non_exhaustive()
                }
            }
        }
    });
    quote!(#section #lenses #debug)
}

fn impl_section(input: &Input<'_>, body: TokenStream) -> TokenStream {
    let ident = input.ident();
    let path = input.path();
    let generics = &input.original.generics;
    let (impl_generics, ty_generics, _) = generics.split_for_impl();
    let mut predicates = predicates(generics);
    // Whatever serde and schemars ask of each type parameter. Quantified over a lifetime,
    // the bound is not checked here for a type without parameters (rustc would reject a
    // false one with a message about trivial bounds); the assertion checks it instead,
    // with a message that says which derive to add.
    predicates.push(quote!(for<'__eac> Self: __eac::SectionBounds));
    let where_clause = where_clause(&predicates);
    let assertion = generics.params.is_empty().then(
        || quote_spanned!(ident.span()=> const _: () = __eac::assert_section_bounds::<#ident>();),
    );
    quote! {
        #assertion

        #[automatically_derived]
        impl #impl_generics __eac::EaCSection for #ident #ty_generics #where_clause {
            const PATH: &'static str = #path;
            #body
        }
    }
}

/// `restart_paths()`: the keys of the fields marked `#[eac(restart)]`, when there are any.
fn restart_paths(fields: &[Field<'_>]) -> TokenStream {
    let keys: Vec<&String> = fields
        .iter()
        .filter(|f| f.attrs.restart.is_some())
        .map(|f| &f.key)
        .collect();
    if keys.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn restart_paths() -> __eac::Vec<__eac::String> {
            __eac::Vec::from([#(__eac::String::from(#keys)),*])
        }
    }
}

/// `secret_paths()`: the secret fields, the `Secret`s inside each field's type (`*` for
/// any element of a list or key of a map), and the secrets of the sections found there.
fn secret_paths(fields: &[Field<'_>]) -> TokenStream {
    if fields.is_empty() {
        return TokenStream::new();
    }
    let pushes = fields.iter().map(|field| {
        if field.is_secret() {
            let key = &field.key;
            return quote!(paths.push(__eac::String::from(#key)););
        }
        // `valid` reported a type whose secrets cannot be placed.
        let places = field.secret_places().unwrap_or_default();
        let pushes = places.iter().map(|place| {
            let key = field.key_of(place);
            match place.what {
                What::Secret => quote!(paths.push(__eac::String::from(#key));),
                // Picks `T::secret_paths()` when the type is a section, nothing otherwise.
                What::Nested(ty) => quote! {
                    paths.extend((&__eac::Nested::<#ty>::new()).secret_paths_under(#key));
                },
            }
        });
        quote!(#(#pushes)*)
    });
    quote! {
        fn secret_paths() -> __eac::Vec<__eac::String> {
            #[allow(unused_imports)]
            use __eac::{LeafSecrets as _, NestedSecrets as _};
            let mut paths = __eac::Vec::new();
            #(#pushes)*
            paths
        }
    }
}

/// The generic parameters of the struct, reused by the lens and marker types.
struct Params {
    /// `T, const N: usize`: to declare them, without bounds.
    decl: Vec<TokenStream>,
    /// `T, N`: to pass them.
    args: Vec<TokenStream>,
    /// `T`: the type parameters alone.
    types: Vec<Ident>,
}

impl Params {
    fn of(input: &Input<'_>) -> Params {
        let mut params = Params {
            decl: Vec::new(),
            args: Vec::new(),
            types: Vec::new(),
        };
        for param in &input.original.generics.params {
            match param {
                GenericParam::Type(t) => {
                    let ident = &t.ident;
                    params.decl.push(quote!(#ident));
                    params.args.push(quote!(#ident));
                    params.types.push(ident.clone());
                }
                GenericParam::Const(c) => {
                    let (ident, ty) = (&c.ident, &c.ty);
                    params.decl.push(quote!(const #ident: #ty));
                    params.args.push(quote!(#ident));
                }
                GenericParam::Lifetime(_) => {}
            }
        }
        params
    }
}

/// `Type::lens()`, the lens type with one method per field, and one marker type per field
/// telling `Field` how to reach it.
fn lenses(input: &Input<'_>, fields: &[Field<'_>]) -> TokenStream {
    let ident = input.ident();
    let vis = &input.original.vis;
    let path = input.path();
    let lens = format_ident!("{}Lens", ast::unraw(ident), span = Span::call_site());
    let Params { decl, args, types } = Params::of(input);
    let (impl_generics, ty_generics, where_clause) = input.original.generics.split_for_impl();
    let p = quote!(__EaCParent);
    let (marker_decl, marker_args) = if decl.is_empty() {
        (TokenStream::new(), TokenStream::new())
    } else {
        (quote!(<#(#decl),*>), quote!(<#(#args),*>))
    };

    let markers = fields.iter().map(|field| {
        let marker = marker_ident(field);
        let marker_vis = marker_vis(vis, field.vis);
        let (member, ty, key) = (field.ident, field.ty, &field.key);
        quote! {
            #marker_vis struct #marker #marker_decl(
                __eac::PhantomData<fn() -> (#(#types,)*)>,
            );
            impl #impl_generics __eac::FieldMarker for #marker #marker_args #where_clause {
                type Owner = #ident #ty_generics;
                type Type = #ty;
                const KEY: &'static str = #key;
                fn get(owner: &Self::Owner) -> &Self::Type {
                    &owner.#member
                }
            }
        }
    });

    let methods = fields.iter().map(|field| {
        let marker = marker_ident(field);
        let (method, method_vis) = (field.ident, field.vis);
        let doc = if field.flatten {
            format!(
                "The lens on `{}`, flattened into the struct: its fields' keys sit directly under the struct's.",
                ast::unraw(field.ident)
            )
        } else {
            format!(
                "The lens on `{}`, at key `{}` below the struct's.",
                ast::unraw(field.ident),
                field.key
            )
        };
        quote! {
            #[doc = #doc]
            #[inline]
            #method_vis fn #method(self) -> __eac::LensField<#p, #marker #marker_args> {
                __eac::field(self.0)
            }
        }
    });

    let lens_doc = format!(
        "Lenses on the fields of [`{name}`], starting at its section path `{path}`.",
        name = ast::unraw(ident)
    );
    let mut fn_doc = format!(
        "Typed lenses on the fields of this section (`{path}`): each reads one field from a \
         snapshot without cloning the section, knows its key path, and can be subscribed to.\n\n"
    );
    for field in fields {
        let key_path = if field.flatten {
            format!("`{path}` (flattened)")
        } else {
            format!("`{path}.{}`", field.key)
        };
        fn_doc.push_str(&format!(
            "- `.{}()` reads {key_path}\n",
            ast::unraw(field.ident)
        ));
    }

    quote! {
        #[doc = #lens_doc]
        #vis struct #lens<#p #(, #decl)*>(
            #p,
            __eac::PhantomData<fn() -> (#(#types,)*)>,
        );

        impl<#p: __eac::Clone #(, #decl)*> __eac::Clone for #lens<#p #(, #args)*> {
            #[inline]
            fn clone(&self) -> Self {
                #lens(__eac::Clone::clone(&self.0), __eac::PhantomData)
            }
        }

        impl<#p: __eac::Copy #(, #decl)*> __eac::Copy for #lens<#p #(, #args)*> {}

        impl<#p: __eac::Lens #(, #decl)*> __eac::Lens for #lens<#p #(, #args)*>
        where
            #(#types: 'static,)*
        {
            type Root = <#p as __eac::Lens>::Root;
            type Output = <#p as __eac::Lens>::Output;

            fn key_path(&self) -> __eac::String {
                __eac::Lens::key_path(&self.0)
            }

            #[inline]
            fn focus<'r>(&self, root: &'r Self::Root) -> &'r Self::Output {
                __eac::Lens::focus(&self.0, root)
            }

            #[inline]
            fn get<'s>(&self, snapshot: &'s __eac::Snapshot) -> &'s Self::Output {
                __eac::Lens::get(&self.0, snapshot)
            }

            #[inline]
            fn try_get<'s>(&self, snapshot: &'s __eac::Snapshot) -> __eac::Option<&'s Self::Output> {
                __eac::Lens::try_get(&self.0, snapshot)
            }
        }

        impl<#p: __eac::Lens #(, #decl)*> __eac::fmt::Debug for #lens<#p #(, #args)*>
        where
            #(#types: 'static,)*
        {
            fn fmt(&self, f: &mut __eac::fmt::Formatter<'_>) -> __eac::fmt::Result {
                __eac::fmt_lens(f, &self.0)
            }
        }

        impl<#p #(, #decl)*> #lens<#p #(, #args)*> {
            #(#methods)*
        }

        #(#markers)*

        impl #impl_generics __eac::HasLenses for #ident #ty_generics #where_clause {
            type Lenses<#p> = #lens<#p #(, #args)*>;

            #[inline]
            fn lenses<#p>(parent: #p) -> Self::Lenses<#p> {
                #lens(parent, __eac::PhantomData)
            }
        }

        impl #impl_generics #ident #ty_generics #where_clause {
            #[doc = #fn_doc]
            #[inline]
            #vis fn lens() -> #lens<__eac::Root<Self> #(, #args)*> {
                #lens(__eac::Root::new(), __eac::PhantomData)
            }
        }
    }
}

fn marker_ident(field: &Field<'_>) -> Ident {
    format_ident!(
        "__EaCField_{}",
        ast::unraw(field.ident),
        span = Span::call_site()
    )
}

/// The narrower of the struct's and the field's visibility, so the marker type is never
/// less visible than the lens method that names it, nor more visible than the struct.
fn marker_vis<'a>(struct_vis: &'a Visibility, field_vis: &'a Visibility) -> &'a Visibility {
    match (struct_vis, field_vis) {
        (Visibility::Public(_), field) => field,
        (Visibility::Inherited, _) => struct_vis,
        (restricted, Visibility::Public(_)) => restricted,
        (_, Visibility::Inherited) => field_vis,
        // A restricted struct is at most crate-wide; otherwise trust the field.
        (Visibility::Restricted(_), Visibility::Restricted(f)) if f.path.is_ident("crate") => {
            struct_vis
        }
        (Visibility::Restricted(_), Visibility::Restricted(_)) => field_vis,
    }
}

/// `Debug` like `#[derive(Debug)]`, but secret fields print `[redacted]`.
fn debug(input: &Input<'_>, fields: &[Field<'_>]) -> TokenStream {
    let ident = input.ident();
    let name = ast::unraw(ident);
    let generics = &input.original.generics;
    let (impl_generics, ty_generics, _) = generics.split_for_impl();
    let mut predicates = predicates(generics);
    if generics.type_params().next().is_some() {
        for field in fields.iter().filter(|f| !f.is_secret()) {
            let ty = field.ty;
            predicates.push(quote_spanned!(ty.span()=> #ty: __eac::fmt::Debug));
        }
    }
    let where_clause = where_clause(&predicates);
    let entries = fields.iter().map(|field| {
        let (member, label) = (field.ident, ast::unraw(field.ident));
        if field.is_secret() {
            quote!(s.field(#label, &__eac::Redacted);)
        } else {
            quote_spanned!(field.ty.span()=> s.field(#label, &self.#member);)
        }
    });
    // Spanned at `#[eac(debug)]`: beside a `#[derive(Debug)]`, the conflict points at it.
    let span = input
        .attrs
        .debug
        .as_ref()
        .map_or_else(proc_macro2::Span::call_site, syn::spanned::Spanned::span);
    quote_spanned! {span=>
        #[automatically_derived]
        impl #impl_generics __eac::fmt::Debug for #ident #ty_generics #where_clause {
            fn fmt(&self, f: &mut __eac::fmt::Formatter<'_>) -> __eac::fmt::Result {
                let mut s = f.debug_struct(#name);
                #(#entries)*
                s.finish()
            }
        }
    }
}

/// The user's where-clause predicates, to add to.
fn predicates(generics: &syn::Generics) -> Vec<TokenStream> {
    generics
        .where_clause
        .iter()
        .flat_map(|w| w.predicates.iter())
        .map(|p| quote!(#p))
        .collect()
}

fn where_clause(predicates: &[TokenStream]) -> TokenStream {
    if predicates.is_empty() {
        TokenStream::new()
    } else {
        quote!(where #(#predicates),*)
    }
}
