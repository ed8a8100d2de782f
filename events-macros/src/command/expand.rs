//! Code for `#[derive(Command)]` (the impl and the command's registration) and for
//! `#[command_handler]` (a `static` descriptor registered for its command and, unless
//! `remote`, the `HandledCommand` impl that makes a second handler a conflicting impl).

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{DeriveInput, ReturnType, Type};

use super::ast::{CommandType, HandlerFn};
use crate::registration::{location, name_or_default, sealed, Derive, Kind};

pub fn derive(command: &CommandType) -> TokenStream {
    let options = &command.options;
    let (items, after) = match options.aggregate.get() {
        // Routed: the generated handler returns the aggregate's version.
        Some(aggregate) => (
            quote!(
                type Output = u64;
                type Error = ::events::sourcing::RoutedError<Self>;
            ),
            Some(super::route::expand(
                command.ident,
                aggregate,
                &command.ids,
                options.retry_on_conflict.get(),
            )),
        ),
        None => {
            let output = (options.output.get()).map_or_else(|| quote!(()), |ty| quote!(#ty));
            let error =
                (options.error.get()).map_or_else(|| quote!(::events::BoxError), |ty| quote!(#ty));
            let handled = options
                .remote_handler
                .get()
                .map(|()| handled(command.ident));
            let addressed = addressed(command.ident);
            (
                quote!(type Output = #output; type Error = #error;),
                Some(quote!(#handled #addressed)),
            )
        }
    };
    Derive {
        kind: Kind::Command,
        input: command.input,
        name: options.name.get(),
        registry_options: None,
        items,
        after,
    }
    .expand()
}

/// `HandledCommand` for `ty`: sending it compiles.
fn handled(ty: impl ToTokens) -> TokenStream {
    quote!(#[automatically_derived] impl ::events::HandledCommand for #ty {})
}

/// `Addressed` for `ty`: `bus.send` can route it by itself (every plain command; a routed
/// one with its id in a field).
pub fn addressed(ty: impl ToTokens) -> TokenStream {
    quote!(#[automatically_derived] impl ::events::Addressed for #ty {})
}

/// After an error: a minimal impl that can be sent, so uses of the command add no error of
/// their own (none for a generic type or a union, which cannot have one).
pub fn derive_fallback(input: &DeriveInput) -> TokenStream {
    let (handled, addressed) = (handled(&input.ident), addressed(&input.ident));
    Derive::fallback(
        Kind::Command,
        input,
        quote!(
            type Output = ();
            type Error = ::events::BoxError;
        ),
        Some(quote!(#handled #addressed)),
    )
}

/// Generates the registration of a handler whose model passed every check: a local type
/// describing the function (`CommandFn`, which asks nothing of the command), registered with
/// `Registration::command::<C, R, _>`, whose bounds check the command `C` and the return type
/// `R`, spelled with the user's tokens: each failure is one error, on its token.
pub fn handler(handler: &HandlerFn, command: &Type) -> TokenStream {
    let ident = &handler.function.sig.ident;
    let name = name_or_default(handler.options.name.get(), ident);
    let ret = match &handler.function.sig.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => unreachable!("a handler without a return type was reported"),
    };
    // The shim's own bindings are `mixed_site`: they never shadow the user's names (a handler
    // may well be called `command` or `cx`), nor are they shadowed by them.
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (command_var, cx_var) = (local("__events_command"), local("__events_cx"));
    let args: Vec<_> = (0..handler.extractors.len())
        .map(|i| local(&format!("__events_arg{i}")))
        .collect();
    let extract = handler.extractors.iter().zip(&args).map(|(ty, arg)| {
        quote_spanned!(ty.span()=> let #arg = __events::extract_for_command::<#ty>(#cx_var)?;)
    });
    let requires = handler
        .extractors
        .iter()
        .map(|ty| quote_spanned!(ty.span()=> <#ty as __events::FromCommandContext>::REQUIRES));
    let is_async = handler.function.sig.asyncness.is_some();
    let await_ = is_async.then(|| quote!(.await));
    let body = quote! {
        #(#extract)*
        ::core::result::Result::Ok(#ident(#command_var, #(#args),*)#await_)
    };
    let call = if is_async {
        // `Send` is required of the whole future: spanned on the function's name.
        let future = quote_spanned!(ident.span()=> __events::boxed_command(async move { #body }));
        quote!(__events::FnCall::Async(|#command_var, #cx_var| #future))
    } else {
        quote!(__events::FnCall::Sync(|#command_var, #cx_var| { #body }))
    };
    let location = location(ident);
    // One handler per command: a second `#[command_handler]` for the same command is a
    // conflicting implementation, reported on the handlers' names.
    let handled = handler.options.remote.get().is_none().then(|| {
        quote_spanned!(ident.span()=> #[automatically_derived] impl ::events::HandledCommand for #command {})
    });
    sealed(quote! {
        struct __EventsHandler;
        impl __events::CommandFn<#command, #ret> for __EventsHandler {
            const FN: __events::FnInfo<#command, #ret> = __events::FnInfo {
                name: #name, location: #location, requires: &[#(#requires),*], call: #call,
            };
        }
        __events::inventory::submit!(__events::Registration::command::<#command, #ret, __EventsHandler>());
        #handled
    })
}

/// After an error in a handler whose command type is known: the `HandledCommand` impl alone,
/// so sending the command adds no "has no handler" error.
pub fn handler_fallback(handler: &HandlerFn) -> TokenStream {
    match (handler.handled, handler.options.remote.key()) {
        (Some(command), None) => sealed(handled(command)),
        _ => TokenStream::new(),
    }
}
