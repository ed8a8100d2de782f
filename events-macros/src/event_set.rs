//! `#[derive(EventSet)]`: an enum whose variants (struct, tuple or unit) are an event-sourced
//! aggregate's events, each stored under its own name and version.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, LitStr};

use crate::attr::{integer, options, string};
use crate::ctxt::Ctxt;

options! {
    /// The options of `#[event_set(..)]` on a variant.
    pub struct VariantOptions for "event_set" {
        name: LitStr = string,
        version: u32 = |cx, meta| Ok(integer(cx, meta, 1, i64::from(u32::MAX))?.map(|v| v as u32)),
    }
}

struct Variant<'a> {
    ident: &'a syn::Ident,
    name: String,
    version: u32,
}

pub fn expand(input: &DeriveInput) -> TokenStream {
    match variants(input) {
        Ok(variants) => implement(input, &variants),
        Err(err) => {
            let error = err.into_compile_error();
            let fallback = fallback(input);
            quote!(#error #fallback)
        }
    }
}

/// After an error, an `EventSet` impl that never runs, so that the code using the enum as an
/// aggregate's events does not add errors of its own: the user sees only the one above. None
/// for a generic type (an impl without the right bounds would add errors instead).
fn fallback(input: &DeriveInput) -> Option<TokenStream> {
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return None;
    }
    let ident = &input.ident;
    let unreachable = quote!(::core::unreachable!("`EventSet` derive failed to compile"));
    Some(quote! {
        #[automatically_derived]
        impl ::events::EventSet for #ident {
            fn name(&self) -> &'static str { #unreachable }
            fn to_new_event(
                &self,
                _: ::events::store::EventMetadata,
            ) -> ::core::result::Result<::events::store::NewEvent, ::events::store::StoreError> {
                #unreachable
            }
            fn from_json(
                _: &str,
                _: ::events::__private::serde_json::Value,
            ) -> ::core::result::Result<::core::option::Option<Self>, ::events::__private::serde_json::Error> {
                #unreachable
            }
            fn publish_with(
                &self,
                _: &::events::Bus,
                _: &::events::store::StoredEvent,
            ) -> ::events::Report {
                #unreachable
            }
            fn dispatch_stored<'a>(
                &'a self,
                _: &'a ::events::Bus,
                _: &'a ::events::store::StoredEvent,
            ) -> ::events::__private::BoxFuture<'a, ::events::Report> {
                #unreachable
            }
        }
    })
}

fn variants(input: &DeriveInput) -> syn::Result<Vec<Variant<'_>>> {
    let cx = Ctxt::new();
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        cx.error_spanned_by(
            &input.generics,
            "`EventSet` cannot be derived for a generic type: an aggregate has one concrete set of events",
        );
    }
    let Data::Enum(data) = &input.data else {
        cx.error_spanned_by(
            &input.ident,
            "`EventSet` is derived for an enum, one variant per event: `enum AccountEvent { Opened { .. }, Deposited { .. } }`",
        );
        return cx.check().map(|()| Vec::new());
    };
    if data.variants.is_empty() {
        cx.error_spanned_by(&input.ident, "an event set needs at least one variant");
    }
    let mut variants = Vec::new();
    for v in &data.variants {
        let options = VariantOptions::from_attrs(&cx, &v.attrs);
        let name = options.name.get();
        let stored = name.map_or(v.ident.to_string(), LitStr::value);
        if let Some(first) = variants.iter().find(|o: &&Variant| o.name == stored) {
            let at = name.map_or(quote!(#v), |lit| quote!(#lit));
            cx.error_spanned_by(
                at,
                format!(
                    "event name `{stored}` is already used by variant `{}`; give each variant its own `#[event_set(name = \"..\")]`",
                    first.ident
                ),
            );
        }
        variants.push(Variant {
            ident: &v.ident,
            name: stored,
            version: options.version.get().copied().unwrap_or(1),
        });
    }
    cx.check()?;
    Ok(variants)
}

fn implement(input: &DeriveInput, variants: &[Variant]) -> TokenStream {
    let ident = &input.ident;
    let count = variants.len();
    let table = variants.iter().map(|v| {
        let (name, version, tag) = (&v.name, v.version, v.ident.to_string());
        quote!(::events::__private::Variant { name: #name, version: #version, tag: #tag })
    });
    let arms = variants.iter().enumerate().map(|(i, v)| {
        let variant = v.ident;
        quote!(#ident::#variant { .. } => &__EVENTS_VARIANTS[#i])
    });
    quote! {
        #[allow(non_upper_case_globals)]
        const _: () = {
            static __EVENTS_VARIANTS: [::events::__private::Variant; #count] = [#(#table),*];

            // Durable handlers of the enum read the events stored under its variants' names.
            ::events::__private::inventory::submit!(::events::__private::SetVariants {
                set: <#ident as ::events::DomainEvent>::NAME,
                variants: &__EVENTS_VARIANTS,
            });

            #[inline]
            fn __events_variant(event: &#ident) -> &'static ::events::__private::Variant {
                match event { #(#arms,)* }
            }

            #[automatically_derived]
            impl ::events::EventSet for #ident {
                fn name(&self) -> &'static str {
                    __events_variant(self).name
                }

                fn to_new_event(
                    &self,
                    metadata: ::events::store::EventMetadata,
                ) -> ::core::result::Result<::events::store::NewEvent, ::events::store::StoreError> {
                    ::events::__private::variant_to_new_event(self, __events_variant(self), metadata)
                }

                fn from_json(
                    name: &str,
                    payload: ::events::__private::serde_json::Value,
                ) -> ::core::result::Result<::core::option::Option<Self>, ::events::__private::serde_json::Error> {
                    ::events::__private::variant_from_json(&__EVENTS_VARIANTS, name, payload)
                }

                fn publish_with(
                    &self,
                    bus: &::events::Bus,
                    stored: &::events::store::StoredEvent,
                ) -> ::events::Report {
                    ::events::__private::variant_publish(self, __events_variant(self), bus, stored)
                }

                fn dispatch_stored<'a>(
                    &'a self,
                    bus: &'a ::events::Bus,
                    stored: &'a ::events::store::StoredEvent,
                ) -> ::events::__private::BoxFuture<'a, ::events::Report> {
                    ::events::__private::variant_dispatch(self, __events_variant(self), bus, stored)
                }
            }
        };
    }
}
