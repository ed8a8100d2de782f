use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler(order = "x")]
fn handle(_e: &CardAdded) {}

fn main() {}
