//! `#[derive(View)]`: a read model's stable name and, with `durable = ".."`, the durable
//! handler that keeps it live: the derive only names the handler and submits the registration
//! of `__private::ViewHandler<V>`, a descriptor written once in the runtime, so the one
//! `AggregateView` bound it needs is reported once, on the `durable` option.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{DeriveInput, LitStr};

use crate::attr::{options, string};
use crate::ctxt::Ctxt;
use crate::registration::{location, sealed};

options! {
    /// The options of `#[view(..)]` on the type.
    pub struct ViewOptions for "view" {
        name: LitStr = string,
        durable: LitStr = string,
    }
}

pub fn expand(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let options = ViewOptions::from_attrs(&cx, &input.attrs);
    let generic = !input.generics.params.is_empty() || input.generics.where_clause.is_some();
    if generic {
        cx.error_spanned_by(
            &input.generics,
            "`View` cannot be derived for a generic type: a view has one stable name, its rows' key",
        );
    }
    let fallback = || {
        if generic {
            return TokenStream::new();
        }
        view_impl(input, None)
    };
    cx.finish(|| implement(input, &options), fallback)
}

/// `impl View` with `NAME` (default: the type's name).
fn view_impl(input: &DeriveInput, name: Option<&LitStr>) -> TokenStream {
    let ident = &input.ident;
    let name = name.map_or_else(|| ident.to_string(), LitStr::value);
    quote! {
        #[automatically_derived]
        impl ::events::sourcing::View for #ident {
            const NAME: &'static str = #name;
        }
    }
}

fn implement(input: &DeriveInput, options: &ViewOptions) -> TokenStream {
    let view = view_impl(input, options.name.get());
    let Some(handler) = options.durable.get() else {
        return view;
    };
    let ident = &input.ident;
    let location = location(ident);
    // The one use of the `AggregateView` bound, spanned on the user's `durable = ".."`.
    let registration = quote_spanned!(handler.span()=> __events::view_registration::<#ident>());
    let kept = sealed(quote! {
        #[automatically_derived]
        impl __events::KeptView for #ident {
            const HANDLER: &'static str = #handler;
            const LOCATION: __events::Location = #location;
        }
        __events::inventory::submit!(#registration);
    });
    quote!(#view #kept)
}
