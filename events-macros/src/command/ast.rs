//! The models of a command type and of a command handler function, read and checked.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, FnArg, Ident, ItemFn, LitStr, ReturnType, Type};

use crate::ctxt::Ctxt;
use crate::function::{check_signature, first_parameter, Kind};

const COMMAND: Kind = Kind {
    a_handler: "a command handler",
    subject: "command",
};
use crate::options::{set_once, skip_value, string, unknown};

pub struct CommandType<'a> {
    pub ident: &'a Ident,
    pub vis: &'a syn::Visibility,
    pub name: Option<LitStr>,
    pub output: Option<Type>,
    pub error: Option<Type>,
    pub remote_handler: bool,
    /// `aggregate = Type`: routed to that aggregate, with the id from `ids`.
    pub aggregate: Option<(Type, super::route::IdFields)>,
}

const COMMAND_OPTIONS: &[&str] = &["name", "output", "error", "remote_handler", "aggregate"];

impl<'a> CommandType<'a> {
    pub fn from_ast(input: &'a DeriveInput) -> syn::Result<Self> {
        let cx = Ctxt::new();
        let generics = &input.generics;
        if !generics.params.is_empty() || generics.where_clause.is_some() {
            cx.error_spanned_by(
                generics,
                "`Command` cannot be derived for a generic type: a command is one concrete request with exactly one handler",
            );
        }
        if let Data::Union(data) = &input.data {
            cx.error_spanned_by(
                data.union_token,
                "`Command` cannot be derived for a union; use a struct or an enum",
            );
        }
        let (mut name, mut output, mut error, mut remote) = (None, None, None, None);
        let mut aggregate: Option<Type> = None;
        for attr in input.attrs.iter().filter(|a| a.path().is_ident("command")) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    let v = string(&cx, &meta)?;
                    set_once(&cx, &mut name, &meta, v);
                } else if meta.path.is_ident("output") {
                    let v = meta.value()?.parse::<Type>()?;
                    set_once(&cx, &mut output, &meta, Some(v));
                } else if meta.path.is_ident("error") {
                    let v = meta.value()?.parse::<Type>()?;
                    set_once(&cx, &mut error, &meta, Some(v));
                } else if meta.path.is_ident("remote_handler") {
                    if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                        cx.error_spanned_by(&meta.path, "`remote_handler` takes no value");
                        skip_value(&meta)?;
                    }
                    set_once(&cx, &mut remote, &meta, Some(()));
                } else if meta.path.is_ident("aggregate") {
                    let v = meta.value()?.parse::<Type>()?;
                    set_once(&cx, &mut aggregate, &meta, Some(v));
                } else {
                    unknown(&cx, "command", &meta, COMMAND_OPTIONS)?;
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
        let ids = super::route::id_fields(&cx, input);
        super::route::check(
            &cx,
            aggregate.as_ref(),
            &ids,
            [&output, &error],
            remote.is_some(),
        );
        cx.check()?;
        Ok(CommandType {
            ident: &input.ident,
            vis: &input.vis,
            name,
            output,
            error,
            remote_handler: remote.is_some(),
            aggregate: aggregate.map(|a| (a, ids)),
        })
    }
}

pub struct HandlerFn<'a> {
    pub function: &'a ItemFn,
    pub name: Option<LitStr>,
    pub remote: bool,
    pub command: &'a Type,
    pub extractors: Vec<&'a Type>,
    pub is_async: bool,
    pub return_span: Span,
}

const HANDLER_OPTIONS: &[&str] = &["name", "remote"];

impl<'a> HandlerFn<'a> {
    pub fn from_ast(args: TokenStream, function: &'a ItemFn) -> syn::Result<Self> {
        let cx = Ctxt::new();
        let (mut name, mut remote) = (None, None);
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let v = string(&cx, &meta)?;
                set_once(&cx, &mut name, &meta, v);
            } else if meta.path.is_ident("remote") {
                if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                    cx.error_spanned_by(&meta.path, "`remote` takes no value");
                    skip_value(&meta)?;
                }
                set_once(&cx, &mut remote, &meta, Some(()));
            } else {
                unknown(&cx, "command_handler", &meta, HANDLER_OPTIONS)?;
            }
            Ok(())
        });
        if let Err(err) = syn::parse::Parser::parse2(parser, args) {
            cx.syn_error(err);
        }
        check_signature(&cx, function, COMMAND);
        let command = command_type(&cx, function);
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
        if let ReturnType::Default = function.sig.output {
            cx.error_spanned_by(
                &function.sig.ident,
                "a command handler returns `Result<Output, Error>`, as declared by `#[command(output = .., error = ..)]` on the command",
            );
        }
        cx.check()?;
        Ok(HandlerFn {
            function,
            name,
            remote: remote.is_some(),
            command: command.expect("checked above"),
            extractors,
            is_async: function.sig.asyncness.is_some(),
            return_span: match &function.sig.output {
                ReturnType::Type(_, ty) => ty.span(),
                ReturnType::Default => function.sig.ident.span(),
            },
        })
    }
}

/// The command type `C` of the first parameter `cmd: C`.
fn command_type<'a>(cx: &Ctxt, function: &'a ItemFn) -> Option<&'a Type> {
    let first = first_parameter(cx, function, COMMAND, "fn handle(cmd: MyCommand)")?;
    match first {
        Type::Reference(reference) => {
            cx.error_spanned_by(
                reference,
                "a command handler takes the command by value (`cmd: MyCommand`), not by reference: the command is sent to it once",
            );
            None
        }
        Type::ImplTrait(_) => None, // reported by `check_signature`
        other => Some(other),
    }
}
