//! Collects every error of one macro invocation, so the user sees them all in one build.

use std::cell::RefCell;

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

#[derive(Default)]
pub struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    pub fn new() -> Self {
        Self::default()
    }

    /// An error spanned on the user's tokens `obj`.
    pub fn error_spanned_by<T: ToTokens, M: Display>(&self, obj: T, msg: M) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(obj.into_token_stream(), msg));
    }

    pub fn syn_error(&self, err: syn::Error) {
        self.errors.borrow_mut().push(err);
    }

    /// The generated code when there was no error; else the errors and `fallback`, a minimal
    /// stand-in so that uses of the item add no error of their own (thiserror's `fallback`).
    pub fn finish(
        self,
        expand: impl FnOnce() -> TokenStream,
        fallback: impl FnOnce() -> TokenStream,
    ) -> TokenStream {
        match self.check() {
            Ok(()) => expand(),
            Err(err) => {
                let mut tokens = err.into_compile_error();
                tokens.extend(fallback());
                tokens
            }
        }
    }

    /// All errors, combined into one, or `Ok` when there were none.
    pub fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_inner().into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for rest in errors {
            combined.combine(rest);
        }
        Err(combined)
    }
}
