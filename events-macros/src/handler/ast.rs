//! The model of an event handler function, read from the attribute's options and the
//! signature. Problems are reported into the context; the model holds what was valid.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Type, TypeReference};

use crate::attr::{flag, integer, options, string, type_list};
use crate::ctxt::Ctxt;
use crate::function::{first_parameter, Kind};

const EVENT: Kind = Kind {
    a_handler: "an event handler",
    subject: "event",
};

/// An event handler function; the handled type is the event `E` of `&E` or `&[E]`.
pub type HandlerFn<'a> = crate::function::HandlerFn<'a, Options>;

options! {
    /// The options of `#[event_handler(..)]`.
    pub struct Options for "event_handler" {
        name: LitStr = string,
        order: i32 = |cx, meta| {
            let order = integer(cx, meta, i64::from(i32::MIN), i64::from(i32::MAX))?;
            Ok(order.map(|v| v as i32))
        },
        publishes: Vec<Type> = |cx, meta| {
            type_list(cx, meta, "event types", "OrderShipped, InvoiceSent")
        },
        /// Delivered from the store by a worker.
        durable: () = |cx, meta| flag(cx, meta, "#[event_handler(durable, name = \"..\")]"),
        max_attempts: u32 = |cx, meta| Ok(integer(cx, meta, 1, 1_000)?.map(|v| v as u32)),
        backoff_ms: u64 = |cx, meta| Ok(integer(cx, meta, 0, 3_600_000)?.map(|v| v as u64)),
        breaker_after: u32 = |cx, meta| Ok(integer(cx, meta, 1, 1_000_000)?.map(|v| v as u32)),
        breaker_cooldown_ms: u64 = |cx, meta| {
            Ok(integer(cx, meta, 0, 86_400_000)?.map(|v| v as u64))
        },
    }
}

/// Reads `#[event_handler(args)] function`.
pub fn from_ast<'a>(cx: &Ctxt, args: TokenStream, function: &'a ItemFn) -> HandlerFn<'a> {
    let options = Options::from_args(cx, args);
    HandlerFn::read(cx, function, EVENT, options, event_type)
}

/// Where a bad return type is reported: on the error type of `Result<(), E>` (the usual mistake
/// is an `E` that is not an error), else on the return type, else on the function's name.
pub fn return_span(sig: &syn::Signature) -> Span {
    let ReturnType::Type(_, ty) = &sig.output else {
        return sig.ident.span();
    };
    if let Type::Path(path) = &**ty {
        if let Some(last) = path.path.segments.last() {
            if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                let args: Vec<_> = args.args.iter().collect();
                if let [syn::GenericArgument::Type(Type::Tuple(ok)), syn::GenericArgument::Type(err)] =
                    args[..]
                {
                    if last.ident == "Result" && ok.elems.is_empty() {
                        return err.span();
                    }
                }
            }
        }
    }
    ty.span()
}

/// The `[E]` of a first parameter `&[E]`.
pub fn batch_parameter(function: &ItemFn) -> Option<&syn::TypeSlice> {
    match function.sig.inputs.first()? {
        FnArg::Typed(pat) => match &*pat.ty {
            Type::Reference(TypeReference { elem, .. }) => match &**elem {
                Type::Slice(slice) => Some(slice),
                _ => None,
            },
            _ => None,
        },
        FnArg::Receiver(_) => None,
    }
}

/// The event type `E` of the first parameter `&E` (or `&[E]`).
fn event_type<'a>(cx: &Ctxt, function: &'a ItemFn) -> Option<&'a Type> {
    let first = first_parameter(cx, function, EVENT, "fn handle(event: &MyEvent)")?;
    match first {
        Type::Reference(TypeReference {
            mutability: Some(mutability),
            ..
        }) => {
            cx.error_spanned_by(mutability, "handlers receive the event as a shared reference `&E`, not `&mut E`: an event is a fact, handlers cannot change it");
            None
        }
        Type::Reference(TypeReference {
            lifetime: Some(lifetime),
            ..
        }) if lifetime.ident == "static" => {
            cx.error_spanned_by(lifetime, "the event is only borrowed for the duration of the call: take `&E` (or `&'a E`), not `&'static E`");
            None
        }
        Type::Reference(TypeReference { elem, .. }) => match &**elem {
            Type::ImplTrait(_) => None, // reported by `check_signature`
            Type::Slice(slice) => Some(&slice.elem),
            elem => Some(elem),
        },
        other => {
            cx.error_spanned_by(
                other,
                "the first parameter of an event handler must be a reference to the event: `&E`",
            );
            None
        }
    }
}
