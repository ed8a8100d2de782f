//! The models of a command type and of a command handler function, read from the options and
//! the item. Problems are reported into the context; the models hold what was valid.

use proc_macro2::TokenStream;
use syn::{Data, DeriveInput, FnArg, Ident, ItemFn, LitStr, Type};

use crate::attr::{flag, parse_attributes, parse_options, string, ty, Attr};
use crate::ctxt::Ctxt;
use crate::function::{check_signature, first_parameter, Kind};

const COMMAND: Kind = Kind {
    a_handler: "a command handler",
    subject: "command",
};

pub struct CommandType<'a> {
    pub input: &'a DeriveInput,
    pub ident: &'a Ident,
    pub name: Attr<LitStr>,
    pub output: Attr<Type>,
    pub error: Attr<Type>,
    pub remote_handler: Attr<()>,
}

const COMMAND_OPTIONS: &[&str] = &["name", "output", "error", "remote_handler"];

impl<'a> CommandType<'a> {
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let mut name = Attr::none("name");
        let mut output = Attr::none("output");
        let mut error = Attr::none("error");
        let mut remote_handler = Attr::none("remote_handler");
        parse_attributes(cx, "command", COMMAND_OPTIONS, &input.attrs, |meta| {
            if name.is(meta) {
                name.set(cx, meta, string(cx, meta)?);
            } else if output.is(meta) {
                output.set(cx, meta, ty(cx, meta)?);
            } else if error.is(meta) {
                error.set(cx, meta, ty(cx, meta)?);
            } else if remote_handler.is(meta) {
                let usage = "#[command(remote_handler)]";
                remote_handler.set(cx, meta, flag(cx, meta, usage)?);
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        CommandType {
            input,
            ident: &input.ident,
            name,
            output,
            error,
            remote_handler,
        }
    }
}

pub struct HandlerFn<'a> {
    pub function: &'a ItemFn,
    pub name: Attr<LitStr>,
    pub remote: Attr<()>,
    pub command: Option<&'a Type>,
    pub extractors: Vec<&'a Type>,
}

const HANDLER_OPTIONS: &[&str] = &["name", "remote"];

impl<'a> HandlerFn<'a> {
    pub fn from_ast(cx: &Ctxt, args: TokenStream, function: &'a ItemFn) -> Self {
        let mut name = Attr::none("name");
        let mut remote = Attr::none("remote");
        parse_options(cx, "command_handler", HANDLER_OPTIONS, args, |meta| {
            if name.is(meta) {
                name.set(cx, meta, string(cx, meta)?);
            } else if remote.is(meta) {
                remote.set(cx, meta, flag(cx, meta, "#[command_handler(remote)]")?);
            } else {
                return Ok(false);
            }
            Ok(true)
        });
        check_signature(cx, function, COMMAND);
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
            name,
            remote,
            command: command_type(cx, function),
            extractors,
        }
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

/// Whether `data` can derive `Command` (reported by `valid` otherwise).
pub fn is_union(data: &Data) -> Option<&syn::token::Union> {
    match data {
        Data::Union(u) => Some(&u.union_token),
        _ => None,
    }
}
