//! `#[derive(Command)]` and `#[command_handler]`: options and items (`ast`), rules (`valid`),
//! code (`expand`).

mod ast;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::ctxt::Ctxt;

pub fn expand_derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let command = ast::CommandType::from_ast(&cx, input);
    valid::check_command(&cx, &command);
    match cx.check() {
        Ok(()) => expand::derive(&command),
        // The errors, and an impl, so uses of the command add no errors of their own.
        Err(err) => {
            let mut tokens = err.into_compile_error();
            tokens.extend(expand::derive_fallback(input));
            tokens
        }
    }
}

pub fn expand_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    crate::function::expand_attribute(
        input,
        "`#[command_handler]` applies to free functions: `fn handle(cmd: MyCommand, ..) -> Result<_, _>`",
        |function| {
            let cx = Ctxt::new();
            let handler = ast::HandlerFn::from_ast(&cx, args, function);
            valid::check_handler(&cx, &handler);
            match (cx.check(), handler.command) {
                (Ok(()), Some(command)) => expand::handler(&handler, command),
                (Err(err), _) => {
                    let mut tokens = err.into_compile_error();
                    tokens.extend(expand::handler_fallback(&handler));
                    tokens
                }
                (Ok(()), None) => unreachable!("a handler without a command type was reported"),
            }
        },
    )
}
