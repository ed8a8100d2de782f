//! The model of a handler function, read from the attribute and the signature, and checked.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Type, TypeReference};

use crate::ctxt::Ctxt;
use crate::function::{check_signature, first_parameter, Kind};

const EVENT: Kind = Kind {
    a_handler: "an event handler",
    subject: "event",
};
use crate::options::{integer, set_once, skip_value, string, unknown};

pub struct HandlerFn<'a> {
    pub function: &'a ItemFn,
    pub name: Option<LitStr>,
    pub order: i32,
    pub publishes: Vec<Type>,
    pub event: &'a Type,
    pub extractors: Vec<&'a Type>,
    pub is_async: bool,
    /// The span of the return type (or of the name when there is none).
    pub return_span: Span,
    /// `durable`: delivered from the store by a worker, with this retry policy.
    pub durable: Option<Retry>,
    /// The first parameter is `&[E]`: a durable batch handler.
    pub batch: bool,
}

/// A durable handler's retry policy; `None` keeps the runtime's default.
pub struct Retry {
    pub max_attempts: Option<u32>,
    pub backoff_ms: Option<u64>,
}

const OPTIONS: &[&str] = &[
    "name",
    "order",
    "publishes",
    "durable",
    "max_attempts",
    "backoff_ms",
];

impl<'a> HandlerFn<'a> {
    pub fn from_ast(args: TokenStream, function: &'a ItemFn) -> syn::Result<Self> {
        let cx = Ctxt::new();
        let options = parse_options(&cx, args);
        check_signature(&cx, function, EVENT);
        let event = event_type(&cx, function);
        let extractors = function
            .sig
            .inputs
            .iter()
            .skip(1)
            .filter_map(|arg| match arg {
                FnArg::Typed(pat) => Some(&*pat.ty),
                FnArg::Receiver(_) => None,
            });
        let extractors = extractors.collect();
        cx.check()?;
        let Options {
            name,
            order,
            publishes,
            durable,
            max_attempts,
            backoff_ms,
        } = options;
        let batch = batch_parameter(function);
        if let (Some(slice), None) = (batch, &durable) {
            return Err(syn::Error::new_spanned(
                slice,
                "a batch handler (`&[E]`) is delivered from the store: add `durable`, like `#[event_handler(durable, name = \"search.index\")]`",
            ));
        }
        Ok(HandlerFn {
            function,
            name,
            order: order.map_or(0, |o| o as i32),
            publishes: publishes.unwrap_or_default(),
            batch: batch.is_some(),
            durable: durable.map(|_| Retry {
                max_attempts: max_attempts.map(|(n, _)| n as u32),
                backoff_ms: backoff_ms.map(|(n, _)| n as u64),
            }),
            event: event.expect("checked above"),
            extractors,
            is_async: function.sig.asyncness.is_some(),
            return_span: return_span(&function.sig),
        })
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

/// Why a durable handler must be named: its checkpoint is keyed by the name.
const DURABLE_WITHOUT_NAME: &str = "a durable handler needs an explicit, stable `name`, like `#[event_handler(durable, name = \"orders.send_confirmation\")]`: its checkpoint is keyed by the name, and the default name (`module_path::fn_name`) changes when the function moves, which would start a new subscription that re-sends the whole history";

#[derive(Default)]
struct Options {
    name: Option<LitStr>,
    order: Option<i64>,
    publishes: Option<Vec<Type>>,
    /// The `durable` key, for errors spanned on it.
    durable: Option<syn::Path>,
    /// With the key, to report a retry option on a handler that is not durable.
    max_attempts: Option<(i64, syn::Path)>,
    backoff_ms: Option<(i64, syn::Path)>,
}

fn parse_options(cx: &Ctxt, args: TokenStream) -> Options {
    let mut o = Options::default();
    let Options {
        name,
        order,
        publishes,
        durable,
        max_attempts,
        backoff_ms,
    } = &mut o;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let v = string(cx, &meta)?;
            set_once(cx, name, &meta, v);
        } else if meta.path.is_ident("order") {
            let v = integer(cx, &meta, i64::from(i32::MIN), i64::from(i32::MAX))?;
            set_once(cx, order, &meta, v);
        } else if meta.path.is_ident("publishes") {
            let v = event_list(cx, &meta)?;
            set_once(cx, publishes, &meta, v);
        } else if meta.path.is_ident("durable") {
            let v = flag(cx, &meta)?.map(|()| meta.path.clone());
            set_once(cx, durable, &meta, v);
        } else if meta.path.is_ident("max_attempts") {
            let v = integer(cx, &meta, 1, 1_000)?.map(|n| (n, meta.path.clone()));
            set_once(cx, max_attempts, &meta, v);
        } else if meta.path.is_ident("backoff_ms") {
            let v = integer(cx, &meta, 0, 3_600_000)?.map(|n| (n, meta.path.clone()));
            set_once(cx, backoff_ms, &meta, v);
        } else {
            unknown(cx, "event_handler", &meta, OPTIONS)?;
        }
        Ok(())
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }
    if let (Some(key), None) = (&o.durable, &o.name) {
        cx.error_spanned_by(key, DURABLE_WITHOUT_NAME);
    }
    if o.durable.is_none() {
        for (_, key) in o.max_attempts.iter().chain(&o.backoff_ms) {
            let key_name = key.get_ident().map(ToString::to_string).unwrap_or_default();
            cx.error_spanned_by(
                key,
                format!("`{key_name}` applies to durable handlers only: add `durable`, like `#[event_handler(durable, {key_name} = ..)]`"),
            );
        }
    }
    o
}

/// A key without a value, like `durable`.
fn flag(cx: &Ctxt, meta: &syn::meta::ParseNestedMeta) -> syn::Result<Option<()>> {
    if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
        return Ok(Some(()));
    }
    let key = meta
        .path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default();
    cx.error_spanned_by(
        &meta.path,
        format!("`{key}` takes no value: write `#[event_handler({key})]`"),
    );
    skip_value(meta)?;
    Ok(None)
}

/// `publishes(EventA, EventB)`.
fn event_list(cx: &Ctxt, meta: &syn::meta::ParseNestedMeta) -> syn::Result<Option<Vec<Type>>> {
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &meta.path,
            "`publishes` lists event types: `publishes(OrderShipped, InvoiceSent)`",
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let content;
    syn::parenthesized!(content in meta.input);
    match content.parse_terminated(Type::parse, syn::Token![,]) {
        Ok(types) => Ok(Some(types.into_iter().collect())),
        Err(err) => {
            cx.syn_error(syn::Error::new(
                err.span(),
                "`publishes` lists event types, like `publishes(OrderShipped, InvoiceSent)`",
            ));
            content.parse::<TokenStream>()?;
            Ok(None)
        }
    }
}

use syn::parse::Parse;

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
