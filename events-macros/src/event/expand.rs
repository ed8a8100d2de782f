//! Code for `#[derive(DomainEvent)]`: the impl, the event's own handler slot, and its entry in
//! the global catalog. Everything else is generic code in `events::__private`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use super::ast::{AggregateField, Event, Shape};

pub fn expand(event: &Event) -> TokenStream {
    let ident = event.ident;
    let name = match &event.name {
        Some(lit) => quote!(#lit),
        None => {
            let default = ident.to_string();
            quote!(#default)
        }
    };
    let version = event.version.unwrap_or(1);
    let aggregate = match &event.aggregate {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    };
    let aggregate_id = aggregate_id_body(event);
    let upcast = event
        .upcast
        .as_ref()
        .map(|path| quote_spanned!(path.span()=> .with_upcaster(#path)));
    let registration = registration(&quote!(#ident), upcast);
    quote! {
        #[allow(non_upper_case_globals, non_camel_case_types, unreachable_code, unused_variables)]
        const _: () = {
            #registration

            #[automatically_derived]
            impl ::events::DomainEvent for #ident {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;
                const AGGREGATE_TYPE: ::core::option::Option<&'static str> = #aggregate;
                type Slot = __EventsSlot;

                fn aggregate_id(&self) -> ::core::option::Option<::std::string::String> {
                    #aggregate_id
                }
            }
        };
    }
}

/// The event's slot (its own link-time handler list) and its catalog entry.
fn registration(ty: &TokenStream, upcast: Option<TokenStream>) -> TokenStream {
    quote! {
        #[doc(hidden)]
        pub struct __EventsSlot(&'static ::events::__private::Handler<#ty>);

        impl __EventsSlot {
            #[doc(hidden)]
            pub const fn __events_new(handler: &'static ::events::__private::Handler<#ty>) -> Self {
                Self(handler)
            }
        }

        ::events::__private::inventory::collect!(__EventsSlot);

        static __EVENTS_REGISTRY: ::events::__private::EventRegistry<#ty> =
            ::events::__private::EventRegistry::new(|| {
                ::events::__private::inventory::iter::<__EventsSlot>
                    .into_iter()
                    .map(|slot| slot.0)
                    .collect()
            })#upcast;

        impl ::events::__private::Slot<#ty> for __EventsSlot {
            #[inline]
            fn registry() -> &'static ::events::__private::EventRegistry<#ty> {
                &__EVENTS_REGISTRY
            }
        }

        ::events::__private::inventory::submit! {
            ::events::__private::EventEntry::new(&__EVENTS_REGISTRY)
        }
    }
}

fn aggregate_id_body(event: &Event) -> TokenStream {
    match &event.shape {
        Shape::Struct {
            aggregate_id: Some(field),
        } => {
            let member = &field.member;
            read_id(field, quote!(&self.#member))
        }
        Shape::Struct { aggregate_id: None } => quote!(::core::option::Option::None),
        Shape::Enum { variants } => {
            let arms = variants.iter().filter_map(|(variant, field)| {
                let field = field.as_ref()?;
                let member = &field.member;
                let read = read_id(field, quote!(__events_id));
                Some(quote!(Self::#variant { #member: __events_id, .. } => #read,))
            });
            quote! {
                #[allow(unreachable_patterns)]
                match self {
                    #(#arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}

/// Reads an aggregate id; the `AggregateId` bound is spanned on the field's type.
fn read_id(field: &AggregateField, value: TokenStream) -> TokenStream {
    let ty = field.ty;
    quote_spanned!(ty.span()=> ::events::__private::aggregate_id::<#ty>(#value))
}

/// After an error: a minimal impl, so uses of the event do not add errors of their own.
pub fn fallback(input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    if !input.generics.params.is_empty() || matches!(input.data, syn::Data::Union(_)) {
        return TokenStream::new();
    }
    let registration = registration(&quote!(#ident), None);
    quote! {
        #[allow(non_upper_case_globals, non_camel_case_types)]
        const _: () = {
            #registration

            impl ::events::DomainEvent for #ident {
                const NAME: &'static str = "";
                const VERSION: u32 = 1;
                const AGGREGATE_TYPE: ::core::option::Option<&'static str> = ::core::option::Option::None;
                type Slot = __EventsSlot;
                fn aggregate_id(&self) -> ::core::option::Option<::std::string::String> {
                    ::core::option::Option::None
                }
            }
        };
    }
}
