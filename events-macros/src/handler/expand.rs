//! Code for `#[event_handler]`: a `static` descriptor beside the user's function, submitted to
//! its event's slot. The shim calling the function is a closure inside the descriptor, so each
//! check (event type, extractors, return type) is reported once, on the user's token. (One known
//! follow-up error: for an event type that is not a `DomainEvent`, the submission into its slot
//! adds "no associated item named `__events_new` found for type `_`" on the same token, after
//! the real error: slots are built in `const` context, where only inherent functions can run.)

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
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
    // The shim's own bindings are `mixed_site`: they never shadow the user's names (a handler
    // may well be called `event` or `cx`), nor are they shadowed by them.
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (event_var, cx_var) = (local("__events_event"), local("__events_cx"));
    let args: Vec<_> = (0..handler.extractors.len())
        .map(|i| local(&format!("__events_arg{i}")))
        .collect();
    let extract = handler.extractors.iter().zip(&args).map(|(ty, arg)| {
        quote_spanned!(ty.span()=> let #arg = ::events::__private::extract::<#ty>(#cx_var)?;)
    });
    let requires = handler
        .extractors
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as ::events::__private::FromContext>::REQUIRES));
    let publishes = handler
        .publishes
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as ::events::DomainEvent>::NAME));
    // Call-site hygiene on purpose: a `mixed_site` span would move the return-type error from
    // the user's return type to the attribute.
    let ret = quote_spanned!(handler.return_span=> __events_ret);
    let check_return =
        quote_spanned!(handler.return_span=> ::events::__private::into_outcome(#ret));
    let call = if handler.durable.is_some() {
        durable_call(
            handler,
            &event_var,
            &cx_var,
            &args,
            &extract.collect::<Vec<_>>(),
            &check_return,
        )
    } else if handler.is_async {
        // `Send` is required of the whole future: spanned on the function's name, so "future
        // cannot be sent between threads safely" points at the user's `async fn`.
        let body = quote! {
            #(#extract)*
            let #ret = #ident(#event_var, #(#args),*).await;
            #check_return
        };
        let future =
            quote_spanned!(ident.span()=> ::events::__private::boxed(async move { #body }));
        quote! {
            ::events::__private::Call::Async(|#event_var, #cx_var| #future)
        }
    } else {
        quote! {
            ::events::__private::Call::Sync(|#event_var, #cx_var| {
                #(#extract)*
                let #ret = #ident(#event_var, #(#args),*);
                #check_return
            })
        }
    };
    let with_retry = handler.durable.as_ref().map(|retry| {
        let default = quote!(::events::__private::RetryPolicy::DEFAULT);
        let max_attempts = retry.max_attempts.map_or_else(|| quote!(#default.max_attempts), |n| quote!(#n));
        let backoff_ms = retry.backoff_ms.map_or_else(|| quote!(#default.backoff_ms), |n| quote!(#n));
        let encode = quote_spanned!(event.span()=> ::events::__private::encode::<#event>);
        quote!(.with_retry(::events::__private::RetryPolicy { max_attempts: #max_attempts, backoff_ms: #backoff_ms }).with_encode(#encode))
    });
    // Spanned on the event type, so "`X` is not a domain event" points at `&X` in the signature.
    let slot = quote_spanned!(event.span()=> <#event as ::events::DomainEvent>::Slot);
    let submit = quote_spanned!(event.span()=> <#slot>::__events_new(&__EVENTS_HANDLER));
    let location = quote_spanned!(ident.span()=>
        ::events::__private::Location::new(::core::file!(), ::core::line!(), ::core::module_path!())
    );
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, non_camel_case_types, clippy::let_unit_value)]
        const _: () = {
            static __EVENTS_HANDLER: ::events::__private::Handler<#event> = ::events::__private::Handler::new(
                #name,
                #order,
                #call,
                &[#(#requires),*],
                &[#(#publishes),*],
                #location,
            )#with_retry;

            ::events::__private::inventory::submit! {
                #submit
            }
        };
    }
}

/// A durable handler's shim: decode the stored payload (the `DeserializeOwned` bound is spanned
/// on the event type), draw the parameters, call the function (sync or async).
fn durable_call(
    handler: &HandlerFn,
    event_var: &Ident,
    cx_var: &Ident,
    args: &[Ident],
    extract: &[TokenStream],
    check_return: &TokenStream,
) -> TokenStream {
    let ident = &handler.function.sig.ident;
    let event = handler.event;
    let payload_var = Ident::new("__events_payload", Span::mixed_site());
    let (variant, decode) = if handler.batch {
        (
            quote!(DurableBatch),
            quote_spanned!(event.span()=> ::events::__private::decode_all::<#event>(#payload_var, #cx_var)?),
        )
    } else {
        (
            quote!(Durable),
            quote_spanned!(event.span()=> ::events::__private::decode::<#event>(#payload_var, #cx_var)?),
        )
    };
    let ret = quote_spanned!(handler.return_span=> __events_ret);
    let call = if handler.is_async {
        quote!(#ident(&#event_var, #(#args),*).await)
    } else {
        quote!(#ident(&#event_var, #(#args),*))
    };
    let body = quote! {
        let #event_var = #decode;
        #(#extract)*
        let #ret = #call;
        #check_return
    };
    let future = quote_spanned!(ident.span()=> ::events::__private::boxed(async move { #body }));
    quote! {
        ::events::__private::Call::#variant(|#payload_var, #cx_var| #future)
    }
}
