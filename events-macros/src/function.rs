//! What the attribute macros on functions (`#[event_handler]`, `#[command_handler]`) share: the
//! item plumbing and the signature checks, worded for the kind of handler.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{FnArg, GenericParam, ItemFn, Type};

use crate::ctxt::Ctxt;

/// The kind of handler, for messages: "an event handler ... one concrete event type".
#[derive(Clone, Copy)]
pub struct Kind {
    /// "an event handler".
    pub a_handler: &'static str,
    /// "event".
    pub subject: &'static str,
}

/// Parses the item, rejects anything but a `fn` (spanned on its leading keywords), and
/// expands it with `expand`. The item itself is always emitted as written, even when it does
/// not parse (rustc then reports the syntax error, as with tracing's `instrument_speculative`)
/// or the attribute has errors, so the rest of the crate still compiles against it and shows
/// no follow-up error; `expand` returns the generated code, or the errors plus a fallback.
pub fn expand_attribute(
    input: TokenStream,
    not_a_function: &str,
    expand: impl FnOnce(&ItemFn) -> TokenStream,
) -> TokenStream {
    let generated = match syn::parse2::<syn::Item>(input.clone()) {
        // Not valid Rust: rustc reports the syntax error itself, once.
        Err(_) => TokenStream::new(),
        Ok(syn::Item::Fn(function)) => expand(&function),
        Ok(item) => {
            syn::Error::new_spanned(first_tokens(&item), not_a_function).into_compile_error()
        }
    };
    let mut tokens = input;
    tokens.extend(generated);
    tokens
}

/// The item's leading keywords, to span an error on (`struct Foo`, `impl X`, ...).
fn first_tokens(item: &syn::Item) -> TokenStream {
    item.to_token_stream()
        .into_iter()
        .take_while(|t| !matches!(t, proc_macro2::TokenTree::Group(_)))
        .take(3)
        .collect()
}

/// Rejects what a handler cannot be: generic, `where`, `unsafe`, `extern`, variadic, a method,
/// `impl Trait` parameters. Every problem is reported.
pub fn check_signature(cx: &Ctxt, function: &ItemFn, kind: Kind) {
    let Kind { a_handler, subject } = kind;
    let sig = &function.sig;
    let generic = sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, GenericParam::Lifetime(_)));
    if let Some(param) = generic {
        cx.error_spanned_by(
            param,
            format!(
                "{a_handler} cannot be generic: each handler handles one concrete {subject} type"
            ),
        );
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            format!("{a_handler} cannot have a `where` clause"),
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(unsafety, format!("{a_handler} cannot be `unsafe fn`"));
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, format!("{a_handler} cannot have an `extern` ABI"));
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format!("{a_handler} cannot be variadic"));
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => cx.error_spanned_by(
                receiver,
                format!("{a_handler} is a free function, not a method: remove `self` and move it out of the `impl` block"),
            ),
            FnArg::Typed(pat) => {
                if let Type::ImplTrait(impl_trait) = &*pat.ty {
                    cx.error_spanned_by(
                        impl_trait,
                        format!("{a_handler} parameter cannot be `impl Trait`: name a concrete type"),
                    );
                }
            }
        }
    }
}

/// The type of the first parameter, which carries what the handler handles. A missing one is
/// an error on the parentheses, saying what to write (`usage`); a `self` receiver is reported
/// by [`check_signature`].
pub fn first_parameter<'a>(
    cx: &Ctxt,
    function: &'a ItemFn,
    kind: Kind,
    usage: &str,
) -> Option<&'a Type> {
    let sig = &function.sig;
    let Some(first) = sig.inputs.first() else {
        let Kind { a_handler, subject } = kind;
        cx.syn_error(syn::Error::new(
            sig.paren_token.span.join(),
            format!("{a_handler} takes the {subject} as its first parameter: `{usage}`"),
        ));
        return None;
    };
    match first {
        FnArg::Typed(first) => Some(&first.ty),
        FnArg::Receiver(_) => None,
    }
}
