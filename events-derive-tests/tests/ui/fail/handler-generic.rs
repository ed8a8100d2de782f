use events::{event_handler, DomainEvent};

#[event_handler]
fn handle<E: DomainEvent>(_e: &E) {}

fn main() {}
