use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct Shipped;

#[event_handler(max_attempts = 3)]
fn notify(_: &Shipped) {}

fn main() {}
