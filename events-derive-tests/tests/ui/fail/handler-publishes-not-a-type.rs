use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler(publishes(CardIndexed, "card.indexed"))]
fn handle(_e: &CardAdded) {}

#[derive(DomainEvent)]
struct CardIndexed;

fn main() {}
