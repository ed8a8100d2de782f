//! What the event and command derives share: the type's link-time registry (a `static`), the
//! hidden slot type that names it, and the type's entry in the global list of its kind. Also
//! the short pieces every generated item uses.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::LitStr;

use crate::ctxt::Ctxt;

/// The kind of type a derive registers: an event (`DomainEvent`, `Slot<E>`, `EventRegistry`)
/// or a command.
#[derive(Clone, Copy)]
pub enum Kind {
    Event,
    Command,
}

/// What a derive generates: the type's registry (a `static`) with `registry_options` (builder
/// calls like `.with_upcaster(..)`), the hidden slot type naming it (with the type's
/// visibility: it is the type's associated type), the type's entry in the global list of its
/// kind, and the trait impl with `NAME` (default: the type's name), `Slot` and `items`; then
/// `after`. Written once for events and commands, used by their fallbacks too.
pub struct Derive<'a> {
    pub kind: Kind,
    pub input: &'a syn::DeriveInput,
    pub name: Option<&'a LitStr>,
    pub registry_options: Option<TokenStream>,
    pub items: TokenStream,
    pub after: Option<TokenStream>,
}

impl<'a> Derive<'a> {
    /// After an error: a minimal impl of the trait (with `items` and then `after`), so uses of
    /// the type add no error of their own; none for a generic type or a union, which cannot
    /// have one.
    pub fn fallback(
        kind: Kind,
        input: &'a syn::DeriveInput,
        items: TokenStream,
        after: Option<TokenStream>,
    ) -> TokenStream {
        if !derivable(input) {
            return TokenStream::new();
        }
        let (name, registry_options) = (None, None);
        let derive = Derive {
            kind,
            input,
            name,
            registry_options,
            items,
            after,
        };
        derive.expand()
    }

    pub fn expand(self) -> TokenStream {
        let (kind, input, registry_options) = (self.kind, self.input, self.registry_options);
        let (items, after) = (self.items, self.after);
        let (ty, vis) = (&input.ident, &input.vis);
        let name = match self.name {
            Some(lit) => quote!(#lit),
            None => ty.to_string().to_token_stream(),
        };
        let (registry, slot_trait, entry, trait_) = match kind {
            Kind::Event => (
                quote!(EventRegistry),
                quote!(Slot),
                quote!(EventEntry),
                quote!(DomainEvent),
            ),
            Kind::Command => (
                quote!(CommandRegistry),
                quote!(CommandSlot),
                quote!(CommandEntry),
                quote!(Command),
            ),
        };
        sealed(quote! {
            #vis struct __EventsSlot;
            static __EVENTS_REGISTRY: __events::#registry<#ty> = __events::#registry::new()#registry_options;
            impl __events::#slot_trait<#ty> for __EventsSlot {
                fn registry() -> &'static __events::#registry<#ty> { &__EVENTS_REGISTRY }
            }
            __events::inventory::submit!(__events::#entry::new(&__EVENTS_REGISTRY));
            #[automatically_derived]
            impl ::events::#trait_ for #ty {
                const NAME: &'static str = #name;
                type Slot = __EventsSlot;
                #items
            }
            #after
        })
    }
}

/// Rejects what cannot derive `trait_` (`why`: "an event type is one concrete, named fact"):
/// a generic type, a union. Returns whether the input can.
pub fn check_derivable(cx: &Ctxt, input: &syn::DeriveInput, trait_: &str, why: &str) -> bool {
    let generics = &input.generics;
    let generic = !generics.params.is_empty() || generics.where_clause.is_some();
    if generic {
        let message = format!("`{trait_}` cannot be derived for a generic type: {why}");
        cx.error_spanned_by(generics, message);
    }
    let syn::Data::Union(data) = &input.data else {
        return !generic;
    };
    let message = format!("`{trait_}` cannot be derived for a union; use a struct or an enum");
    cx.error_spanned_by(data.union_token, message);
    false
}

/// Whether a fallback impl can be emitted for `input` (not for a generic type or a union).
fn derivable(input: &syn::DeriveInput) -> bool {
    check_derivable(&Ctxt::new(), input, "", "")
}

/// Wraps generated items in an anonymous `const`, with the short alias `__events` for
/// `::events::__private` that they use.
pub fn sealed(items: TokenStream) -> TokenStream {
    quote! {
        const _: () = {
            use ::events::__private as __events;
            #items
        };
    }
}

/// The given name, or the default `module_path::fn_name`.
pub fn name_or_default(name: Option<&LitStr>, ident: &Ident) -> TokenStream {
    match name {
        Some(lit) => quote!(#lit),
        None => {
            let fn_name = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
    }
}

/// The source location of the item named `ident` (its line, not the attribute's).
pub fn location(ident: &Ident) -> TokenStream {
    quote_spanned!(ident.span()=>
        __events::Location::new(::core::file!(), ::core::line!(), ::core::module_path!())
    )
}

/// How generated code names field `index` of a struct or variant: `self.name` or `self.0`.
pub fn member(index: usize, field: &syn::Field) -> syn::Member {
    match &field.ident {
        Some(ident) => syn::Member::Named(ident.clone()),
        None => syn::Member::Unnamed(syn::Index {
            index: index as u32,
            span: syn::spanned::Spanned::span(&field.ty),
        }),
    }
}
