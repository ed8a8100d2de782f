//! `#[derive(Command)]` and `#[command_handler]`: options and items (`ast`), rules (`valid`),
//! code (`expand`).

mod ast;
mod expand;
mod route;
mod valid;

use proc_macro2::TokenStream;
use syn::{DeriveInput, ItemFn, Type};

use crate::ctxt::Ctxt;
use crate::function::HandlerMacro;

pub fn expand_derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let command = ast::CommandType::from_ast(&cx, input);
    valid::check_command(&cx, &command);
    cx.finish(
        || expand::derive(&command),
        || expand::derive_fallback(input),
    )
}

pub enum CommandHandler {}

impl HandlerMacro for CommandHandler {
    type Options = ast::HandlerOptions;
    const NOT_A_FUNCTION: &'static str =
        "`#[command_handler]` applies to free functions: `fn handle(cmd: MyCommand, ..) -> Result<_, _>`";

    fn read<'a>(cx: &Ctxt, args: TokenStream, function: &'a ItemFn) -> ast::HandlerFn<'a> {
        ast::handler_from_ast(cx, args, function)
    }

    fn check(cx: &Ctxt, handler: &ast::HandlerFn) {
        valid::check_handler(cx, handler);
    }

    fn expand(handler: &ast::HandlerFn, command: &Type) -> TokenStream {
        expand::handler(handler, command)
    }

    fn fallback(handler: &ast::HandlerFn) -> TokenStream {
        expand::handler_fallback(handler)
    }
}
