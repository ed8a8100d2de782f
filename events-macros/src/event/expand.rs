//! Code for `#[derive(DomainEvent)]`: the impl, and the event's registration (its handler
//! registry and its entry in the global catalog). Everything else is generic code in
//! `events::__private`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use super::ast::{AggregateField, Event, Shape};
use crate::registration::{Derive, Kind};

pub fn expand(event: &Event) -> TokenStream {
    let options = &event.options;
    let version = options
        .version
        .get()
        .map(|v| quote!(const VERSION: u32 = #v;));
    let aggregate = options.aggregate.get().map(|lit| {
        quote!(const AGGREGATE_TYPE: ::core::option::Option<&'static str> = ::core::option::Option::Some(#lit);)
    });
    let aggregate_id = aggregate_id(event).map(|body| {
        quote! {
            fn aggregate_id(&self) -> ::core::option::Option<::std::string::String> { #body }
        }
    });
    let upcast =
        (options.upcast.get()).map(|path| quote_spanned!(path.span()=> .with_upcaster(#path)));
    Derive {
        kind: Kind::Event,
        input: event.input,
        name: options.name.get(),
        registry_options: upcast,
        items: quote!(#version #aggregate #aggregate_id),
        after: None,
    }
    .expand()
}

/// The body of `aggregate_id`, when a field is marked.
fn aggregate_id(event: &Event) -> Option<TokenStream> {
    match &event.shape {
        Shape::Struct {
            aggregate_id: Some(field),
        } => {
            let member = &field.member;
            Some(read_id(field, quote!(&self.#member)))
        }
        Shape::Struct { aggregate_id: None } | Shape::Union => None,
        Shape::Enum { variants } => {
            let arms: Vec<_> = variants
                .iter()
                .filter_map(|(variant, field)| {
                    let field = field.as_ref()?;
                    let member = &field.member;
                    let read = read_id(field, quote!(__events_id));
                    Some(quote!(Self::#variant { #member: __events_id, .. } => #read,))
                })
                .collect();
            (!arms.is_empty()).then(|| {
                quote! {
                    #[allow(unreachable_patterns)]
                    match self {
                        #(#arms)*
                        _ => ::core::option::Option::None,
                    }
                }
            })
        }
    }
}

/// Reads an aggregate id; the `AggregateId` bound is spanned on the field's type.
fn read_id(field: &AggregateField, value: TokenStream) -> TokenStream {
    let ty = field.ty;
    quote_spanned!(ty.span()=> __events::aggregate_id::<#ty>(#value))
}

/// After an error: a minimal impl, so uses of the event add no error of their own (none for a
/// generic type or a union, which cannot have one).
pub fn fallback(input: &DeriveInput) -> TokenStream {
    Derive::fallback(Kind::Event, input, TokenStream::new(), None)
}
