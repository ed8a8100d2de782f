//! `#[derive(DomainEvent)]`: options and fields (`ast`), rules between them (`valid`), code
//! (`expand`).

mod ast;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use syn::DeriveInput;

use crate::ctxt::Ctxt;

pub fn expand(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let event = ast::Event::from_ast(&cx, input);
    valid::check(&cx, &event);
    cx.finish(|| expand::expand(&event), || expand::fallback(input))
}
