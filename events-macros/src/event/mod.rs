//! `#[derive(DomainEvent)]`.

mod ast;
mod expand;

use proc_macro2::TokenStream;
use syn::DeriveInput;

pub fn expand(input: &DeriveInput) -> TokenStream {
    match ast::Event::from_ast(input) {
        Ok(event) => expand::expand(&event),
        // Still emit an impl so the user sees our errors, not a cascade of missing-trait errors.
        Err(err) => {
            let mut tokens = err.into_compile_error();
            tokens.extend(expand::fallback(input));
            tokens
        }
    }
}
