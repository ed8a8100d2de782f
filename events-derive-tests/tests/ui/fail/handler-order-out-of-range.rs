use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler(order = 3000000000)]
fn handle(_e: &CardAdded) {}

fn main() {}
