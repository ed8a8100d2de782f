use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler(retires = 3)]
fn handle(_e: &CardAdded) {}

fn main() {}
