//! The rules of `#[event_handler]` between options and the signature, checked on the finished
//! model, each once. A rule whose input was reported bad already is skipped (no cascade).

use super::ast::{batch_parameter, HandlerFn};
use crate::ctxt::Ctxt;

/// Why a durable handler must be named: its checkpoint is keyed by the name.
const DURABLE_WITHOUT_NAME: &str = "a durable handler needs an explicit, stable `name`, like `#[event_handler(durable, name = \"orders.send_confirmation\")]`: its checkpoint is keyed by the name, and the default name (`module_path::fn_name`) changes when the function moves, which would start a new subscription that re-sends the whole history";

pub fn check(cx: &Ctxt, handler: &HandlerFn) {
    let o = &handler.options;
    // `durable = ..` was reported: the handler was meant durable, do not report its options.
    let meant_durable = o.durable.key().is_some();
    if let (Some(durable), None) = (o.durable.key(), o.name.key()) {
        cx.error_spanned_by(durable, DURABLE_WITHOUT_NAME);
    }
    if !meant_durable {
        for key in [
            o.max_attempts.key(),
            o.backoff_ms.key(),
            o.breaker_after.key(),
            o.breaker_cooldown_ms.key(),
        ]
        .into_iter()
        .flatten()
        {
            let key_name = key.get_ident().map(ToString::to_string).unwrap_or_default();
            cx.error_spanned_by(
                key,
                format!("`{key_name}` applies to durable handlers only: add `durable`, like `#[event_handler(durable, name = \"..\", {key_name} = ..)]`"),
            );
        }
        if let Some(slice) = batch_parameter(handler.function) {
            cx.error_spanned_by(
                slice,
                "a batch handler (`&[E]`) is delivered from the store: add `durable`, like `#[event_handler(durable, name = \"search.index\")]`",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::super::ast::from_ast;
    use crate::ctxt::Ctxt;

    /// Every error message of `#[event_handler(args)] item`, in order.
    fn errors(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> Vec<String> {
        let function: syn::ItemFn = syn::parse2(item).unwrap();
        let cx = Ctxt::new();
        let handler = from_ast(&cx, args, &function);
        super::check(&cx, &handler);
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_durable_handler_needs_a_name() {
        let item = quote!(
            fn notify(e: &Shipped) {}
        );
        let found = errors(quote!(durable), item.clone());
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("a durable handler needs an explicit, stable `name`"));
        assert!(errors(quote!(durable, name = "shipping.notify"), item).is_empty());
    }

    #[test]
    fn one_misuse_gives_one_error() {
        let item = quote!(
            fn notify(e: &Shipped) {}
        );
        // A bad name is reported as such, not also as a missing one.
        let found = errors(quote!(durable, name = 5), item.clone());
        assert_eq!(
            found,
            ["`name` expects a string literal, like `name = \"...\"`"]
        );
        // `durable = true` was meant durable: its retry options are not reported.
        let found = errors(quote!(durable = true, name = "n", max_attempts = 3), item);
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn rules_between_options_are_checked_with_the_other_options() {
        let batch = quote!(
            fn index(cards: &[CardAdded]) {}
        );
        let found = errors(quote!(order = "first", backoff_ms = 5), batch);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("`order` expects an integer literal"));
        assert!(found[1].starts_with("`backoff_ms` applies to durable handlers only"));
        assert!(found[2].starts_with("a batch handler (`&[E]`) is delivered from the store"));
    }
}
