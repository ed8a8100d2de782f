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

/// One attribute macro on handler functions, in stages: read the options and the signature,
/// check the rules between them, then generate the registration, or fall back.
pub trait HandlerMacro {
    type Options;
    /// The error for an item that is not a function, saying what to write.
    const NOT_A_FUNCTION: &'static str;
    fn read<'a>(cx: &Ctxt, args: TokenStream, function: &'a ItemFn)
        -> HandlerFn<'a, Self::Options>;
    fn check(cx: &Ctxt, handler: &HandlerFn<Self::Options>);
    fn expand(handler: &HandlerFn<Self::Options>, handled: &Type) -> TokenStream;
    /// After an error: what keeps uses of the function free of errors of their own.
    fn fallback(handler: &HandlerFn<Self::Options>) -> TokenStream;
}

/// Expands the attribute `M` on `input`. The item itself is always emitted as written, even
/// when it does not parse (rustc then reports the syntax error, as with tracing's
/// `instrument_speculative`) or the attribute has errors, so the rest of the crate still
/// compiles against it; anything but a `fn` is an error spanned on its leading keywords.
pub fn expand_attribute<M: HandlerMacro>(args: TokenStream, input: TokenStream) -> TokenStream {
    let generated = match syn::parse2::<syn::Item>(input.clone()) {
        // Not valid Rust: rustc reports the syntax error itself, once.
        Err(_) => TokenStream::new(),
        Ok(syn::Item::Fn(function)) => expand_function::<M>(args, &function),
        Ok(item) => {
            syn::Error::new_spanned(first_tokens(&item), M::NOT_A_FUNCTION).into_compile_error()
        }
    };
    let mut tokens = input;
    tokens.extend(generated);
    tokens
}

fn expand_function<M: HandlerMacro>(args: TokenStream, function: &ItemFn) -> TokenStream {
    let cx = Ctxt::new();
    let handler = M::read(&cx, args, function);
    M::check(&cx, &handler);
    match handler.handled {
        Some(handled) => cx.finish(|| M::expand(&handler, handled), || M::fallback(&handler)),
        // Not found: reported (else an internal error, never silence).
        None => cx.finish(|| not_found(function), TokenStream::new),
    }
}

/// A handler function as read: its options, the type it handles (from its first parameter,
/// `None` once reported bad) and the types of its other parameters (the extractors).
pub struct HandlerFn<'a, O> {
    pub function: &'a ItemFn,
    pub options: O,
    pub handled: Option<&'a Type>,
    pub extractors: Vec<&'a Type>,
}

impl<'a, O> HandlerFn<'a, O> {
    /// Checks the signature (every problem reported into `cx`) and reads the handled type with
    /// `handled`.
    pub fn read(
        cx: &Ctxt,
        function: &'a ItemFn,
        kind: Kind,
        options: O,
        handled: impl FnOnce(&Ctxt, &'a ItemFn) -> Option<&'a Type>,
    ) -> Self {
        check_signature(cx, function, kind);
        HandlerFn {
            function,
            options,
            handled: handled(cx, function),
            extractors: extractors(function),
        }
    }
}

/// The parameters after the first: the extractors.
fn extractors(function: &ItemFn) -> Vec<&Type> {
    let typed = function.sig.inputs.iter().skip(1);
    typed
        .filter_map(|arg| match arg {
            FnArg::Typed(pat) => Some(&*pat.ty),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// For a handled type that was not found although no error was reported: a bug of this crate,
/// said as such rather than registering nothing.
fn not_found(function: &ItemFn) -> TokenStream {
    let message =
        "internal error of `events-macros`: the handled type was not found; please report it";
    syn::Error::new_spanned(&function.sig, message).into_compile_error()
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

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::expand_attribute;
    use crate::handler::EventHandler;

    #[test]
    fn an_item_that_does_not_parse_is_emitted_as_written_for_rustc_to_report() {
        let input = quote!(fn broken(e: &CardAdded) { let });
        let output = expand_attribute::<EventHandler>(quote!(), input.clone());
        assert_eq!(output.to_string(), input.to_string());
    }

    #[test]
    fn a_function_is_kept_beside_the_errors_of_its_attribute() {
        let input = quote!(
            fn index(e: &CardAdded) {}
        );
        let output = expand_attribute::<EventHandler>(quote!(retires = 3), input.clone());
        let output = output.to_string();
        assert!(output.starts_with(&input.to_string()), "{output}");
        assert!(output.contains("compile_error"), "{output}");
        assert!(
            !output.contains("Registration"),
            "nothing registered on error: {output}"
        );
    }

    #[test]
    fn an_item_that_is_not_a_function_is_kept_beside_the_error() {
        let input = quote!(
            struct Indexer;
        );
        let output = expand_attribute::<EventHandler>(quote!(), input.clone()).to_string();
        assert!(output.starts_with(&input.to_string()), "{output}");
        assert!(output.contains("applies to free functions"), "{output}");
    }
}
