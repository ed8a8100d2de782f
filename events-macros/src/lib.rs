//! Procedural macros of the `events` crate. Use them through `events`, which re-exports them.
//!
//! Each macro reads its options (`attr`) and item into a small model (`ast`), checks the rules
//! between them (`valid`) while collecting every error (`ctxt`), then generates code
//! (`expand`) that only calls into `::events::__private`; on error it emits the errors and a
//! fallback, so uses of the item add no error of their own.

mod attr;
mod command;
mod ctxt;
mod event;
mod event_set;
#[cfg(test)]
mod expansion_size;
mod function;
mod handler;
mod registration;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `events::DomainEvent`. See the `events` crate for the options.
#[proc_macro_derive(DomainEvent, attributes(event))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    event::expand(&parse_macro_input!(input as DeriveInput)).into()
}

/// Derives `events::Command`. See the `events` crate for the options.
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    command::expand_derive(&parse_macro_input!(input as DeriveInput)).into()
}

/// Registers a function as an event handler at link time. See the `events` crate.
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    function::expand_attribute::<handler::EventHandler>(args.into(), input.into()).into()
}

/// Registers a function as the one handler of a command at link time. See the `events` crate.
#[proc_macro_attribute]
pub fn command_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    function::expand_attribute::<command::CommandHandler>(args.into(), input.into()).into()
}

/// Derives `events::EventSet` for an enum of an aggregate's events (struct, tuple or unit
/// variants), each stored under its own name and version. See the `events` crate.
#[proc_macro_derive(EventSet, attributes(event_set))]
pub fn derive_event_set(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event_set::expand(&input).into()
}
