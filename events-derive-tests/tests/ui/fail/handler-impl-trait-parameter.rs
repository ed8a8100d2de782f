use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler]
fn handle(_e: &CardAdded, _log: impl std::fmt::Debug) {}

fn main() {}
