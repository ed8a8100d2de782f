//! The rules of `#[derive(Command)]` and `#[command_handler]` on the item's shape, checked on
//! the finished models.

use syn::ReturnType;

use super::ast::{is_union, CommandType, HandlerFn};
use crate::ctxt::Ctxt;

pub fn check_command(cx: &Ctxt, command: &CommandType) {
    let generics = &command.input.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "`Command` cannot be derived for a generic type: a command is one concrete request with exactly one handler",
        );
    }
    if let Some(union_token) = is_union(&command.input.data) {
        cx.error_spanned_by(
            union_token,
            "`Command` cannot be derived for a union; use a struct or an enum",
        );
    }
}

pub fn check_handler(cx: &Ctxt, handler: &HandlerFn) {
    let sig = &handler.function.sig;
    if let ReturnType::Default = sig.output {
        cx.error_spanned_by(
            &sig.ident,
            "a command handler returns `Result<Output, Error>`, as declared by `#[command(output = .., error = ..)]` on the command",
        );
    }
}
