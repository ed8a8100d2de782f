use events::{event_handler, DomainEvent};

#[derive(DomainEvent, serde::Deserialize)]
struct Shipped;

// The checkpoint is keyed by the name: a default name would change when the function moves.
#[event_handler(durable)]
fn notify(_: &Shipped) {}

fn main() {}
