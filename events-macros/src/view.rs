//! `#[derive(View)]`: a read model's stable name and, with `durable = ".."`, the durable
//! handler that keeps it live. The handler is an ordinary `#[event_handler]` calling one tested
//! function of the runtime (`__private::keep_view`); the `AggregateView` bound it needs is
//! spanned on the `durable` option.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{DeriveInput, LitStr};

use crate::attr::{options, string};
use crate::ctxt::Ctxt;

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
    // The `AggregateView` bound the handler needs is spanned on the user's `durable = ".."`.
    let event =
        quote_spanned!(handler.span()=> <#ident as ::events::sourcing::AggregateView>::Event);
    quote! {
        #view
        const _: () = {
            #[::events::event_handler(durable, name = #handler)]
            async fn __events_keep_view(
                event: &#event,
                meta: ::events::Meta,
                views: ::events::sourcing::ViewKeeper<#ident>,
            ) -> ::core::result::Result<(), ::events::store::StoreError> {
                ::events::__private::keep_view::<#ident>(event, meta, views).await
            }
        };
    }
}
