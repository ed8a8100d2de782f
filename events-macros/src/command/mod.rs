//! `#[derive(Command)]` and `#[command_handler]`.

mod ast;
mod expand;
mod route;

use proc_macro2::TokenStream;
use syn::DeriveInput;

pub fn expand_derive(input: &DeriveInput) -> TokenStream {
    match ast::CommandType::from_ast(input) {
        Ok(command) => expand::derive(&command),
        // Still emit an impl so the user sees our errors, not a cascade of missing-trait errors.
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
        |function| Ok(expand::handler(&ast::HandlerFn::from_ast(args, function)?)),
    )
}
