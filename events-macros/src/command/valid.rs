//! The rules of `#[derive(Command)]` and `#[command_handler]` on the item's shape, checked on
//! the finished models.

use syn::ReturnType;

use super::ast::{CommandType, HandlerFn};
use crate::ctxt::Ctxt;
use crate::registration::check_derivable;

pub fn check_command(cx: &Ctxt, command: &CommandType) {
    let why = "a command is one concrete request with exactly one handler";
    check_derivable(cx, command.input, "Command", why);
    check_routed(cx, command);
}

/// A command routed to its aggregate (`aggregate = ..`) has a generated handler: it declares
/// no output, error or remote handler of its own; and `retry_on_conflict` or a marked `id`
/// needs `aggregate`.
fn check_routed(cx: &Ctxt, command: &CommandType) {
    let options = &command.options;
    if options.aggregate.key().is_some() {
        for key in [options.output.key(), options.error.key()]
            .into_iter()
            .flatten()
        {
            cx.error_spanned_by(
                key,
                "a command routed to its aggregate returns the aggregate's version (`u64`) or fails with `events::SendError` of the aggregate's own `Handle::Error`: remove `output` and `error`",
            );
        }
        if let Some(key) = options.remote_handler.key() {
            cx.error_spanned_by(
                key,
                "a command routed to its aggregate is handled where it is defined: remove `remote_handler`",
            );
        }
    } else if let Some(key) = options.retry_on_conflict.key() {
        cx.error_spanned_by(
            key,
            "`retry_on_conflict` re-runs a command routed to its aggregate after a lost append race: add `#[command(aggregate = MyAggregate)]` to the command",
        );
    } else if let Some(first) = command.ids.fields.first() {
        cx.error_spanned_by(
            &first.key,
            "`#[command(id)]` marks the aggregate id of a command routed to its aggregate: add `#[command(aggregate = MyAggregate)]` to the command",
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
