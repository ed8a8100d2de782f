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
    error_type(ty).map_or_else(|| ty.span(), Spanned::span)
}

/// The `E` of a `Result<(), E>` return type.
fn error_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let args: Vec<_> = args.args.iter().collect();
    match args[..] {
        [syn::GenericArgument::Type(Type::Tuple(ok)), syn::GenericArgument::Type(err)]
            if last.ident == "Result" && ok.elems.is_empty() =>
        {
            Some(err)
        }
        _ => None,
    }
}

/// Whether the handler returns `Result<(), Box<dyn Error>>` with an error that is not `Sync`
/// (the usual first signature): its error is converted to its message instead of refused.
pub fn returns_local_error(sig: &syn::Signature) -> bool {
    let ReturnType::Type(_, ty) = &sig.output else {
        return false;
    };
    let Some(Type::Path(boxed)) = error_type(ty) else {
        return false;
    };
    let Some(last) = boxed.path.segments.last() else {
        return false;
    };
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    let [syn::GenericArgument::Type(Type::TraitObject(object))] =
        &args.args.iter().collect::<Vec<_>>()[..]
    else {
        return false;
    };
    let bound_named = |name: &str| {
        object.bounds.iter().any(|b| {
            matches!(b, syn::TypeParamBound::Trait(t)
                if t.path.segments.last().is_some_and(|s| s.ident == name))
        })
    };
    last.ident == "Box" && bound_named("Error") && !bound_named("Sync")
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

#[cfg(test)]
mod local_error_tests {
    use super::returns_local_error;

    fn sig(ret: &str) -> syn::Signature {
        syn::parse_str(&format!("fn handle(e: &E) {ret}")).unwrap()
    }

    #[test]
    fn a_boxed_error_that_is_not_sync_is_converted() {
        assert!(returns_local_error(&sig(
            "-> Result<(), Box<dyn std::error::Error>>"
        )));
        assert!(returns_local_error(&sig(
            "-> Result<(), Box<dyn Error + Send>>"
        )));
        assert!(!returns_local_error(&sig(
            "-> Result<(), Box<dyn Error + Send + Sync>>"
        )));
        assert!(!returns_local_error(&sig("-> Result<(), String>")));
        assert!(!returns_local_error(&sig("")));
    }
}
