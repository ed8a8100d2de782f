//! Procedural macros of the `events` crate. Use them through `events`, which re-exports them.
//!
//! Each macro parses into a small model (`ast`), checks it while collecting every error
//! (`ctxt`), then generates code (`expand`) that only calls into `::events::__private`.

mod command;
mod ctxt;
mod event;
mod event_set;
mod function;
mod handler;
mod options;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `events::DomainEvent`. See the `events` crate for the options.
#[proc_macro_derive(DomainEvent, attributes(event))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::expand(&input).into()
}

/// Registers a function as an event handler at link time. See the `events` crate.
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    handler::expand(args.into(), input.into()).into()
}

/// Derives `events::Command`. See the `events` crate for the options.
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    command::expand_derive(&input).into()
}

/// Registers a function as the one handler of a command at link time. See the `events` crate.
#[proc_macro_attribute]
pub fn command_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    command::expand_handler(args.into(), input.into()).into()
}

/// Derives `events::EventSet` for an enum of an aggregate's events (struct, tuple or unit
/// variants), each stored under its own name and version. See the `events` crate.
#[proc_macro_derive(EventSet, attributes(event_set))]
pub fn derive_event_set(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event_set::expand(&input).into()
}
