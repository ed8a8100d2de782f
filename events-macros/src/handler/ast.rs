//! The model of an event handler function, read from the attribute's options and the
//! signature. Problems are reported into the context; the model holds what was valid.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Type, TypeReference};

use crate::attr::{flag, integer, parse_options, string, type_list, Attr};
use crate::ctxt::Ctxt;
use crate::function::{check_signature, first_parameter, Kind};

const EVENT: Kind = Kind {
    a_handler: "an event handler",
    subject: "event",
};

const OPTIONS: &[&str] = &[
    "name",
    "order",
    "publishes",
    "durable",
    "max_attempts",
    "backoff_ms",
];

pub struct HandlerFn<'a> {
    pub function: &'a ItemFn,
    pub options: Options,
    /// The event type `E` of the first parameter `&E` or `&[E]`.
    pub event: Option<&'a Type>,
    /// The first parameter is `&[E]`: a batch handler.
    pub batch: Option<&'a syn::TypeSlice>,
    pub extractors: Vec<&'a Type>,
    /// The span of the return type (or of the name when there is none).
    pub return_span: Span,
}

pub struct Options {
    pub name: Attr<LitStr>,
    pub order: Attr<i32>,
    pub publishes: Attr<Vec<Type>>,
    /// Delivered from the store by a worker.
    pub durable: Attr<()>,
    pub max_attempts: Attr<u32>,
    pub backoff_ms: Attr<u64>,
}

impl<'a> HandlerFn<'a> {
    pub fn from_ast(cx: &Ctxt, args: TokenStream, function: &'a ItemFn) -> Self {
        let options = Options::parse(cx, args);
        check_signature(cx, function, EVENT);
        let extractors = function
            .sig
            .inputs
            .iter()
            .skip(1)
            .filter_map(|arg| match arg {
                FnArg::Typed(pat) => Some(&*pat.ty),
                FnArg::Receiver(_) => None,
            })
            .collect();
        HandlerFn {
            function,
            options,
            event: event_type(cx, function),
            batch: batch_parameter(function),
            extractors,
            return_span: return_span(&function.sig),
        }
    }
}

impl Options {
    fn parse(cx: &Ctxt, args: TokenStream) -> Self {
        let mut o = Options {
            name: Attr::none("name"),
            order: Attr::none("order"),
            publishes: Attr::none("publishes"),
            durable: Attr::none("durable"),
            max_attempts: Attr::none("max_attempts"),
            backoff_ms: Attr::none("backoff_ms"),
        };
        parse_options(cx, "event_handler", OPTIONS, args, |meta| {
            if o.name.is(meta) {
                o.name.set(cx, meta, string(cx, meta)?);
            } else if o.order.is(meta) {
                let v = integer(cx, meta, i64::from(i32::MIN), i64::from(i32::MAX))?;
                o.order.set(cx, meta, v.map(|v| v as i32));
            } else if o.publishes.is(meta) {
                let example = "OrderShipped, InvoiceSent";
                o.publishes
                    .set(cx, meta, type_list(cx, meta, "event types", example)?);
            } else if o.durable.is(meta) {
                let usage = "#[event_handler(durable, name = \"..\")]";
                o.durable.set(cx, meta, flag(cx, meta, usage)?);
            } else if o.max_attempts.is(meta) {
                let v = integer(cx, meta, 1, 1_000)?;
                o.max_attempts.set(cx, meta, v.map(|v| v as u32));
            } else if o.backoff_ms.is(meta) {
                let v = integer(cx, meta, 0, 3_600_000)?;
                o.backoff_ms.set(cx, meta, v.map(|v| v as u64));
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        o
    }
}

/// Where a bad return type is reported: on the error type of `Result<(), E>` (the usual mistake
/// is an `E` that is not an error), else on the return type, else on the function's name.
fn return_span(sig: &syn::Signature) -> Span {
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
fn batch_parameter(function: &ItemFn) -> Option<&syn::TypeSlice> {
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
