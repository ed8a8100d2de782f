//! `#[event_handler]`.

mod ast;
mod expand;

use proc_macro2::TokenStream;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    crate::function::expand_attribute(
        input,
        "`#[event_handler]` applies to free functions: `fn handle(event: &MyEvent, ..)`",
        |function| Ok(expand::expand(&ast::HandlerFn::from_ast(args, function)?)),
    )
}
