//! Code for `#[event_handler]`: a `static` descriptor beside the user's function, registered
//! for its event. The shim calling the function is a closure inside the descriptor; each check
//! (event type, extractors, return type) is a call to a generic helper of `events::__private`
//! spanned on the user's token, so it is reported once, there.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Type;

use super::ast::{batch_parameter, return_span, returns_local_error, HandlerFn};
use crate::registration::{location, name_or_default, sealed};

/// Generates the registration of a handler whose model passed every check.
pub fn expand(handler: &HandlerFn, event: &Type) -> TokenStream {
    let o = &handler.options;
    let ident = &handler.function.sig.ident;
    let name = name_or_default(o.name.get(), ident);
    let order = o.order.get().copied().unwrap_or(0);
    let requires = handler
        .extractors
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as __events::FromContext>::REQUIRES));
    let publishes = o
        .publishes
        .get()
        .into_iter()
        .flatten()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as ::events::DomainEvent>::NAME));
    // Only the options given; the others keep the runtime's default.
    let retry = [
        ("max_attempts", o.max_attempts.get().map(|n| quote!(#n))),
        ("backoff_ms", o.backoff_ms.get().map(|n| quote!(#n))),
        (
            "breaker_after",
            o.breaker_after
                .get()
                .map(|n| quote!(::core::option::Option::Some(#n))),
        ),
        (
            "breaker_cooldown_ms",
            o.breaker_cooldown_ms
                .get()
                .map(|n| quote!(::core::option::Option::Some(#n))),
        ),
    ];
    let options = retry.len();
    let retry: Vec<_> = retry
        .into_iter()
        .filter_map(|(key, value)| {
            let key = Ident::new(key, Span::call_site());
            value.map(|value| quote!(#key: #value))
        })
        .collect();
    let default = (retry.len() < options).then(|| quote!(..__events::RetryPolicy::DEFAULT));
    let with_retry = (!retry.is_empty())
        .then(|| quote!(.with_retry(__events::RetryPolicy { #(#retry,)* #default })));
    // A durable handler carries its event's encoder, so a bus given a store can record the
    // event when it is published; the serde bound is spanned on the event type.
    let with_encode = o.durable.get().is_some().then(|| {
        let encode = quote_spanned!(event.span()=> __events::encode::<#event>);
        quote!(.with_encode(#encode))
    });
    let call = call(handler, event);
    let location = location(ident);
    // Spanned on the event type: "`X` is not a domain event" points at `&X` in the signature.
    let register = quote_spanned!(event.span()=> __events::Registration::event::<#event>);
    sealed(quote! {
        static __EVENTS_HANDLER: __events::Handler<#event> = __events::Handler::new(
            #name, #order, #call, &[#(#requires),*], &[#(#publishes),*], #location,
        )#with_retry #with_encode;
        __events::inventory::submit!(#register(&__EVENTS_HANDLER));
    })
}

/// The shim: one of seven shapes (inline sync, with or without extractors, or async; durable
/// sync or async, of one event or of a batch), all drawing the parameters and checking the
/// return value the same way.
fn call(handler: &HandlerFn, event: &Type) -> TokenStream {
    let ident = &handler.function.sig.ident;
    // The shim's own bindings are `mixed_site`: they never shadow the user's names (a handler
    // may well be called `event` or `cx`), nor are they shadowed by them.
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (event_var, cx_var) = (local("__events_event"), local("__events_cx"));
    let args: Vec<_> = (0..handler.extractors.len())
        .map(|i| local(&format!("__events_arg{i}")))
        .collect();
    let extract = handler.extractors.iter().zip(&args).map(
        |(ty, arg)| quote_spanned!(ty.span()=> let #arg = __events::extract::<#ty>(#cx_var)?;),
    );
    let is_async = handler.function.sig.asyncness.is_some();
    let durable = handler.options.durable.get().is_some();
    let event_arg = if durable {
        quote!(&#event_var)
    } else {
        quote!(#event_var)
    };
    let await_ = is_async.then(|| quote!(.await));
    // Call-site hygiene on purpose: a `mixed_site` span would move the return-type error from
    // the user's return type to the attribute.
    let return_span = return_span(&handler.function.sig);
    let ret = quote_spanned!(return_span=> __events_ret);
    // A `Box<dyn Error>` that is not `Sync` is kept as its message instead of refused.
    let into_outcome = if returns_local_error(&handler.function.sig) {
        Ident::new("into_outcome_local", return_span)
    } else {
        Ident::new("into_outcome", return_span)
    };
    let check_return = quote_spanned!(return_span=> __events::#into_outcome(#ret));
    let batch = batch_parameter(handler.function).is_some();
    let decode = durable.then(|| {
        let decode = if batch {
            quote!(decode_all)
        } else {
            quote!(decode)
        };
        // The `DeserializeOwned` bound is spanned on the event type.
        quote_spanned!(event.span()=> let #event_var = __events::#decode::<#event>(#event_var, #cx_var)?;)
    });
    let body = quote! {
        #decode
        #(#extract)*
        let #ret = #ident(#event_arg, #(#args),*)#await_;
        #check_return
    };
    // `Send` is required of the whole future: spanned on the function's name, so "future
    // cannot be sent between threads safely" points at the user's `async fn`.
    let future = quote_spanned!(ident.span()=> async move { #body });
    // Durable handlers' futures are boxed; inline ones are built and polled in the dispatch's
    // slot, never moved.
    let (variant, wrap) = match (durable, batch, is_async) {
        (true, true, _) => (quote!(DurableBatch), "boxed"),
        (true, false, _) => (quote!(Durable), "boxed"),
        (false, _, true) => {
            let (slot, task) = (local("__events_slot"), local("__events_task"));
            let start = quote_spanned!(ident.span()=> __events::start(#slot, #task, #future));
            return quote!(__events::Call::Async(|#event_var, #cx_var, #slot, #task| #start));
        }
        // A sync handler that takes the event alone needs no context: its event may be
        // published without one. The second shim is the same call from a walk with a context.
        (false, _, false) if args.is_empty() => {
            let bare = local("__EVENTS_BARE");
            return quote!({
                const #bare: __events::BareCall<#event> = |#event_var| { #body };
                __events::Call::Bare(#bare, |#event_var, _| #bare(#event_var))
            });
        }
        (false, _, false) => return quote!(__events::Call::Sync(|#event_var, #cx_var| { #body })),
    };
    let wrap = Ident::new(wrap, ident.span());
    let future = quote_spanned!(ident.span()=> __events::#wrap(#future));
    quote!(__events::Call::#variant(|#event_var, #cx_var| #future))
}
