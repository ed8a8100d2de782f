//! What the event and command derives share: the type's link-time registry (a `static`), the
//! hidden slot type that names it, and the type's entry in the global list of its kind. Also
//! the short pieces every generated item uses.

use proc_macro2::{Ident, TokenStream};
use quote::{quote, quote_spanned};
use syn::LitStr;

/// The kind of registry: events (`Slot<E>`, `EventRegistry`) or commands.
#[derive(Clone, Copy)]
pub enum Kind {
    Event,
    Command,
}

/// The slot, registry and entry of `ty`; `registry_options` are builder calls on the registry
/// (`.with_upcaster(..)`). The slot has the type's visibility: it is the type's associated type.
pub fn registration(
    kind: Kind,
    vis: &syn::Visibility,
    ty: &Ident,
    registry_options: Option<TokenStream>,
) -> TokenStream {
    let (registry, slot_trait, command, entry) = match kind {
        Kind::Event => (
            quote!(EventRegistry),
            quote!(Slot<#ty>),
            None,
            quote!(EventEntry),
        ),
        Kind::Command => (
            quote!(CommandRegistry),
            quote!(CommandSlot),
            Some(quote!(type Command = #ty;)),
            quote!(CommandEntry),
        ),
    };
    quote! {
        #vis struct __EventsSlot;
        static __EVENTS_REGISTRY: __events::#registry<#ty> = __events::#registry::new()#registry_options;
        impl __events::#slot_trait for __EventsSlot {
            #command
            fn registry() -> &'static __events::#registry<#ty> { &__EVENTS_REGISTRY }
        }
        __events::inventory::submit!(__events::#entry::new(&__EVENTS_REGISTRY));
    }
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
