//! `#[derive(Command)]` and `#[command_handler]`.

mod ast;
mod expand;

use proc_macro2::TokenStream;
use quote::ToTokens;
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
    let item: syn::Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(err) => return err.into_compile_error(),
    };
    let syn::Item::Fn(function) = item else {
        let mut tokens = syn::Error::new_spanned(
            first_tokens(&item),
            "`#[command_handler]` applies to free functions: `fn handle(cmd: MyCommand, ..) -> Result<_, _>`",
        )
        .into_compile_error();
        tokens.extend(input);
        return tokens;
    };
    match ast::HandlerFn::from_ast(args, &function) {
        Ok(handler) => {
            let mut tokens = function.to_token_stream();
            tokens.extend(expand::handler(&handler));
            tokens
        }
        Err(err) => {
            let mut tokens = err.into_compile_error();
            tokens.extend(function.to_token_stream());
            tokens
        }
    }
}

fn first_tokens(item: &syn::Item) -> TokenStream {
    item.to_token_stream()
        .into_iter()
        .take_while(|t| !matches!(t, proc_macro2::TokenTree::Group(_)))
        .take(3)
        .collect()
}
