//! `#[event_handler]`: options and signature (`ast`), rules between them (`valid`), code
//! (`expand`).

mod ast;
mod expand;
mod valid;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    crate::function::expand_attribute(
        input,
        "`#[event_handler]` applies to free functions: `fn handle(event: &MyEvent, ..)`",
        |function| {
            let cx = Ctxt::new();
            let handler = ast::HandlerFn::from_ast(&cx, args, function);
            valid::check(&cx, &handler);
            match (cx.check(), handler.event) {
                (Ok(()), Some(event)) => expand::expand(&handler, event),
                // The function is emitted as written: its uses add no error of their own.
                (Err(err), _) => err.into_compile_error(),
                (Ok(()), None) => unreachable!("a handler without an event type was reported"),
            }
        },
    )
}
