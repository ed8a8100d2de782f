use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[derive(DomainEvent)]
struct CardIndexed;

#[event_handler(publishes = CardIndexed)]
fn handle(_e: &CardAdded) {}

fn main() {}
