//! The rules of `#[derive(Command)]` and `#[command_handler]` on the item's shape, checked on
//! the finished models.

use syn::ReturnType;

use super::ast::{CommandType, HandlerFn};
use crate::ctxt::Ctxt;
use crate::registration::check_derivable;

pub fn check_command(cx: &Ctxt, command: &CommandType) {
    let why = "a command is one concrete request with exactly one handler";
    check_derivable(cx, command.input, "Command", why);
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
