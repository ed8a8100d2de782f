//! `#[event_handler]`: options and signature (`ast`), rules between them (`valid`), code
//! (`expand`).

mod ast;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use syn::{ItemFn, Type};

use crate::ctxt::Ctxt;
use crate::function::{HandlerFn, HandlerMacro};

pub enum EventHandler {}

impl HandlerMacro for EventHandler {
    type Options = ast::Options;
    const NOT_A_FUNCTION: &'static str =
        "`#[event_handler]` applies to free functions: `fn handle(event: &MyEvent, ..)`";

    fn read<'a>(cx: &Ctxt, args: TokenStream, function: &'a ItemFn) -> HandlerFn<'a, ast::Options> {
        ast::from_ast(cx, args, function)
    }

    fn check(cx: &Ctxt, handler: &HandlerFn<ast::Options>) {
        valid::check(cx, handler);
    }

    fn expand(handler: &HandlerFn<ast::Options>, event: &Type) -> TokenStream {
        expand::expand(handler, event)
    }

    /// The function is emitted as written: its uses add no error of their own.
    fn fallback(_: &HandlerFn<ast::Options>) -> TokenStream {
        TokenStream::new()
    }
}
