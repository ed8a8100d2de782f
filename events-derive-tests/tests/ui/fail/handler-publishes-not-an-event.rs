use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

struct NotAnEvent;

#[event_handler(publishes(NotAnEvent))]
fn handle(_e: &CardAdded) {}

fn main() {}
