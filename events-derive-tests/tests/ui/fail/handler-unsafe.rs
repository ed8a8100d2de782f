use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler]
unsafe fn handle(_e: &CardAdded) {}

fn main() {}
