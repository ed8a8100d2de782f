// The generated code must only use absolute paths: it still compiles, without a warning, when
// the prelude's names are shadowed by local items (as serde's `test_gen.rs` does).
#![deny(warnings)]
#![allow(dead_code, non_camel_case_types, non_snake_case)]

use events::{command_handler, event_handler, Command, DomainEvent, Meta, Publisher, Res};

struct Result;
struct Ok;
struct Err;
struct Some;
struct None;
struct Option;
struct String;
struct Box;
struct Vec;
struct Send;
struct Sync;
struct Sized;
struct Into;
struct Fn;
struct From;
struct Default;
struct Clone;
struct Copy;
struct Future;
struct Pin;
struct inventory;
struct core;
struct std;
struct concat;
struct module_path;
struct file;
struct line;

mod __private {}

#[derive(DomainEvent)]
#[event(name = "hygiene.happened", version = 2, aggregate = "Hygiene")]
struct Happened {
    #[event(aggregate_id)]
    id: u64,
}

#[derive(DomainEvent)]
struct Tuple(#[event(aggregate_id)] u32);

#[derive(DomainEvent)]
struct Unit;

#[derive(DomainEvent)]
enum Changed {
    A {
        #[event(aggregate_id)]
        id: u64,
    },
    B(#[event(aggregate_id)] i32),
    C,
}

struct Mailer;

#[event_handler]
fn sync_handler(_e: &Happened) {}

#[event_handler(name = "hygiene.named", order = 3, publishes(Unit, Tuple))]
fn with_options(_e: &Happened, _m: Res<Mailer>, _meta: Meta, _p: Publisher) {}

#[event_handler]
fn fallible(_e: &Unit) -> ::std::result::Result<(), ::std::string::String> {
    ::std::result::Result::Ok(())
}

#[event_handler]
async fn async_handler(_e: &Changed, _meta: Meta) {}

#[event_handler]
async fn async_fallible(_e: &Tuple) -> ::std::result::Result<(), ::std::io::Error> {
    ::std::result::Result::Ok(())
}

// Handlers named like the shim's own bindings.
#[event_handler]
fn event(_e: &Unit) {}

#[event_handler]
fn cx(_e: &Unit, _meta: Meta) {}

#[event_handler]
async fn __events_event(_e: &Unit) {}

#[derive(DomainEvent, serde::Serialize, serde::Deserialize)]
struct Stored {
    #[event(aggregate_id)]
    id: u64,
}

#[event_handler(durable, name = "hygiene.durable", max_attempts = 2)]
fn durable(_e: &Stored, _m: Res<Mailer>) {}

#[event_handler(durable, name = "hygiene.batch", backoff_ms = 5)]
async fn batch(_e: &[Stored]) -> ::std::result::Result<(), ::std::io::Error> {
    ::std::result::Result::Ok(())
}

#[derive(Command)]
#[command(output = u64, error = ::std::string::String)]
struct Deposit {
    amount: u64,
}

#[command_handler]
fn deposit(cmd: Deposit, _m: Res<Mailer>) -> ::std::result::Result<u64, ::std::string::String> {
    ::std::result::Result::Ok(cmd.amount)
}

#[derive(Command)]
struct Close;

#[command_handler(name = "hygiene.close")]
async fn close(_cmd: Close, _meta: Meta) -> ::std::result::Result<(), ::events::BoxError> {
    ::std::result::Result::Ok(())
}

fn main() {}
