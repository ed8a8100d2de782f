//! Code for `#[derive(Command)]` (the impl, the command's own handler slot, its entry in the
//! global list) and for `#[command_handler]` (a `static` descriptor submitted to the slot and,
//! unless `remote`, the `HandledCommand` impl that makes a second handler a conflicting impl).

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use super::ast::{CommandType, HandlerFn};

pub fn derive(command: &CommandType) -> TokenStream {
    let ident = command.ident;
    let name = match &command.name {
        Some(lit) => quote!(#lit),
        None => {
            let default = ident.to_string();
            quote!(#default)
        }
    };
    if let Some((aggregate, ids)) = &command.aggregate {
        let routed = super::route::expand(ident, aggregate, ids);
        let body = slot_and_impl(
            command.vis,
            &quote!(#ident),
            &name,
            &quote!(u64),
            &quote!(::events::sourcing::RoutedError<#ident>),
        );
        return quote! {
            #[allow(non_upper_case_globals, non_camel_case_types)]
            const _: () = {
                #body
                #routed
            };
        };
    }
    let output = match &command.output {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let error = match &command.error {
        Some(ty) => quote!(#ty),
        None => quote!(::events::BoxError),
    };
    let remote = command.remote_handler.then(|| {
        quote! {
            #[automatically_derived]
            impl ::events::HandledCommand for #ident {}
        }
    });
    let body = slot_and_impl(command.vis, &quote!(#ident), &name, &output, &error);
    quote! {
        #[allow(non_upper_case_globals, non_camel_case_types)]
        const _: () = {
            #body
            #remote
        };
    }
}

/// The slot has the command's visibility: it is the command's associated type, and the
/// command is its associated type.
fn slot_and_impl(
    vis: &syn::Visibility,
    ty: &TokenStream,
    name: &TokenStream,
    output: &TokenStream,
    error: &TokenStream,
) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #vis struct __EventsCommandSlot(&'static ::events::__private::CommandHandler<#ty>);

        impl __EventsCommandSlot {
            #[doc(hidden)]
            pub const fn new(handler: &'static ::events::__private::CommandHandler<#ty>) -> Self {
                Self(handler)
            }
        }

        ::events::__private::inventory::collect!(__EventsCommandSlot);

        static __EVENTS_COMMAND_REGISTRY: ::events::__private::CommandRegistry<#ty> =
            ::events::__private::CommandRegistry::new(|| {
                ::events::__private::inventory::iter::<__EventsCommandSlot>
                    .into_iter()
                    .map(|slot| slot.0)
                    .collect()
            });

        impl ::events::__private::CommandSlot for __EventsCommandSlot {
            type Command = #ty;
            #[inline]
            fn registry() -> &'static ::events::__private::CommandRegistry<#ty> {
                &__EVENTS_COMMAND_REGISTRY
            }
        }

        ::events::__private::inventory::submit! {
            ::events::__private::CommandEntry::new(&__EVENTS_COMMAND_REGISTRY)
        }

        #[automatically_derived]
        impl ::events::Command for #ty {
            const NAME: &'static str = #name;
            type Output = #output;
            type Error = #error;
            type Slot = __EventsCommandSlot;
        }
    }
}

/// After an error: a minimal impl, so uses of the command do not add errors of their own.
pub fn derive_fallback(input: &DeriveInput) -> TokenStream {
    let ident = &input.ident;
    if !input.generics.params.is_empty() || matches!(input.data, syn::Data::Union(_)) {
        return TokenStream::new();
    }
    let name = ident.to_string();
    let body = slot_and_impl(
        &input.vis,
        &quote!(#ident),
        &quote!(#name),
        &quote!(()),
        &quote!(::events::BoxError),
    );
    quote! {
        #[allow(non_upper_case_globals, non_camel_case_types)]
        const _: () = {
            #body
            impl ::events::HandledCommand for #ident {}
        };
    }
}

pub fn handler(handler: &HandlerFn) -> TokenStream {
    let ident = &handler.function.sig.ident;
    let command = handler.command;
    let name = match &handler.name {
        Some(lit) => quote!(#lit),
        None => {
            let fn_name = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
    };
    // The shim's own bindings are `mixed_site`: they never shadow the user's names (a handler
    // may well be called `command` or `cx`), nor are they shadowed by them.
    let local = |name: &str| Ident::new(name, Span::mixed_site());
    let (command_var, cx_var) = (local("__events_command"), local("__events_cx"));
    let args: Vec<_> = (0..handler.extractors.len())
        .map(|i| local(&format!("__events_arg{i}")))
        .collect();
    let extract = handler.extractors.iter().zip(&args).map(|(ty, arg)| {
        quote_spanned!(ty.span()=>
            let #arg = ::events::__private::extract_for_command::<#ty, __EventsCommandSlot>(#cx_var)?;
        )
    });
    let requires = handler.extractors.iter().map(
        |ty| quote_spanned!(ty.span()=> <#ty as ::events::__private::FromCommandContext>::REQUIRES),
    );
    let ret = quote_spanned!(handler.return_span=> __events_ret);
    let check_return = quote_spanned!(handler.return_span=>
        ::events::__private::into_command_outcome::<__EventsCommandSlot, _>(#ret)
    );
    let call = if handler.is_async {
        quote! {
            ::events::__private::CommandCall::Async(|#command_var, #cx_var| {
                ::events::__private::boxed_command::<__EventsCommandSlot, _>(async move {
                    #(#extract)*
                    let #ret = #ident(#command_var, #(#args),*).await;
                    #check_return
                })
            })
        }
    } else {
        quote! {
            ::events::__private::CommandCall::Sync(|#command_var, #cx_var| {
                #(#extract)*
                let #ret = #ident(#command_var, #(#args),*);
                #check_return
            })
        }
    };
    let slot = quote_spanned!(command.span()=> <#command as ::events::Command>::Slot);
    let location = quote_spanned!(ident.span()=>
        ::events::__private::Location::new(::core::file!(), ::core::line!(), ::core::module_path!())
    );
    // One handler per command: a second `#[command_handler]` for the same command is a
    // conflicting implementation, reported on the handlers' names.
    let handled = (!handler.remote).then(|| {
        quote_spanned! {ident.span()=>
            #[automatically_derived]
            impl ::events::HandledCommand for #command {}
        }
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, non_camel_case_types, clippy::let_unit_value)]
        const _: () = {
            type __EventsCommandSlot = #slot;

            static __EVENTS_COMMAND_HANDLER: ::events::__private::CommandHandlerOf<__EventsCommandSlot> =
                ::events::__private::CommandHandler::new(
                    #name,
                    #call,
                    &[#(#requires),*],
                    #location,
                );

            ::events::__private::inventory::submit! {
                __EventsCommandSlot::new(&__EVENTS_COMMAND_HANDLER)
            }

            #handled
        };
    }
}
