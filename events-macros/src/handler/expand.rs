//! Code for `#[event_handler]`: a `static` descriptor beside the user's function, submitted to
//! its event's slot. The shim calling the function is a closure inside the descriptor, so each
//! check (event type, extractors, return type) is reported once, on the user's token.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::HandlerFn;

pub fn expand(handler: &HandlerFn) -> TokenStream {
    let ident = &handler.function.sig.ident;
    let event = handler.event;
    let name = match &handler.name {
        Some(lit) => quote!(#lit),
        None => {
            let fn_name = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
    };
    let order = handler.order;
    let args: Vec<_> = (0..handler.extractors.len())
        .map(|i| format_ident!("__events_arg{}", i))
        .collect();
    let extract = handler.extractors.iter().zip(&args).map(|(ty, arg)| {
        quote_spanned!(ty.span()=> let #arg = ::events::__private::extract::<#ty>(cx)?;)
    });
    let requires = handler
        .extractors
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as ::events::__private::FromContext>::REQUIRES));
    let publishes = handler
        .publishes
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as ::events::DomainEvent>::NAME));
    let ret = quote_spanned!(handler.return_span=> __events_ret);
    let check_return =
        quote_spanned!(handler.return_span=> ::events::__private::into_outcome(#ret));
    let call = if handler.is_async {
        quote! {
            ::events::__private::Call::Async(|event, cx| ::events::__private::boxed(async move {
                #(#extract)*
                let #ret = #ident(event, #(#args),*).await;
                #check_return
            }))
        }
    } else {
        quote! {
            ::events::__private::Call::Sync(|event, cx| {
                #(#extract)*
                let #ret = #ident(event, #(#args),*);
                #check_return
            })
        }
    };
    let slot = quote_spanned!(event.span()=> <#event as ::events::DomainEvent>::Slot);
    let location = quote_spanned!(ident.span()=>
        ::events::__private::Location::new(::core::file!(), ::core::line!(), ::core::module_path!())
    );
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, non_camel_case_types, clippy::let_unit_value)]
        const _: () = {
            type __EventsSlot = #slot;

            static __EVENTS_HANDLER: ::events::__private::Handler<#event> = ::events::__private::Handler::new(
                #name,
                #order,
                #call,
                &[#(#requires),*],
                &[#(#publishes),*],
                #location,
            );

            ::events::__private::inventory::submit! {
                __EventsSlot::new(&__EVENTS_HANDLER)
            }
        };
    }
}
