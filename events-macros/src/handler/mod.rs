//! `#[event_handler]`.

mod ast;
mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;

pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(err) => return err.into_compile_error(),
    };
    let syn::Item::Fn(function) = item else {
        let mut tokens = syn::Error::new_spanned(
            first_tokens(&item),
            "`#[event_handler]` applies to free functions: `fn handle(event: &MyEvent, ..)`",
        )
        .into_compile_error();
        tokens.extend(input);
        return tokens;
    };
    match ast::HandlerFn::from_ast(args, &function) {
        Ok(handler) => {
            let mut tokens = function.to_token_stream();
            tokens.extend(expand::expand(&handler));
            tokens
        }
        // The function stays as written so the rest of the crate still compiles against it.
        Err(err) => {
            let mut tokens = err.into_compile_error();
            tokens.extend(function.to_token_stream());
            tokens
        }
    }
}

/// The item's leading keywords, to span an error on (`struct Foo`, `impl X`, ...).
fn first_tokens(item: &syn::Item) -> TokenStream {
    item.to_token_stream()
        .into_iter()
        .take_while(|t| !matches!(t, proc_macro2::TokenTree::Group(_)))
        .take(3)
        .collect()
}
