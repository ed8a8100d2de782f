//! The models of a command type and of a command handler function, read from the options and
//! the item. Problems are reported into the context; the models hold what was valid.

use proc_macro2::TokenStream;
use syn::{DeriveInput, Ident, ItemFn, LitStr, Type};

use super::route::IdFields;
use crate::attr::{flag, integer, options, string, ty};
use crate::ctxt::Ctxt;
use crate::function::{first_parameter, Kind};

const COMMAND: Kind = Kind {
    a_handler: "a command handler",
    subject: "command",
};

pub struct CommandType<'a> {
    pub input: &'a DeriveInput,
    pub ident: &'a Ident,
    pub options: CommandOptions,
    /// The fields marked `#[command(id)]`: the aggregate id of a routed command.
    pub ids: IdFields,
}

options! {
    /// The options of `#[command(..)]`.
    pub struct CommandOptions for "command" {
        name: LitStr = string,
        output: Type = ty,
        error: Type = ty,
        remote_handler: () = |cx, meta| flag(cx, meta, "#[command(remote_handler)]"),
        /// Routed to this event-sourced aggregate, with no handler to write.
        aggregate: Type = ty,
        /// How many times a routed command runs again after it lost an append race.
        retry_on_conflict: u32 = |cx, meta| Ok(integer(cx, meta, 0, 100)?.map(|v| v as u32)),
    }
}

impl<'a> CommandType<'a> {
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        CommandType {
            input,
            ident: &input.ident,
            options: CommandOptions::from_attrs(cx, &input.attrs),
            ids: IdFields::from_ast(cx, input),
        }
    }
}

/// A command handler function; the handled type is the command `C` of `cmd: C`.
pub type HandlerFn<'a> = crate::function::HandlerFn<'a, HandlerOptions>;

options! {
    /// The options of `#[command_handler(..)]`.
    pub struct HandlerOptions for "command_handler" {
        name: LitStr = string,
        remote: () = |cx, meta| flag(cx, meta, "#[command_handler(remote)]"),
    }
}

/// Reads `#[command_handler(args)] function`.
pub fn handler_from_ast<'a>(cx: &Ctxt, args: TokenStream, function: &'a ItemFn) -> HandlerFn<'a> {
    let options = HandlerOptions::from_args(cx, args);
    HandlerFn::read(cx, function, COMMAND, options, command_type)
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
