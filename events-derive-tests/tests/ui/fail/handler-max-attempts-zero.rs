use events::{event_handler, DomainEvent};

#[derive(DomainEvent, serde::Deserialize)]
struct Shipped;

#[event_handler(durable, name = "shipping.notify", max_attempts = 0)]
fn notify(_: &Shipped) {}

fn main() {}
