use events::{event_handler, DomainEvent};

#[derive(DomainEvent, serde::Deserialize)]
struct Shipped;

#[event_handler(durable = true, name = "shipping.notify")]
fn notify(_: &Shipped) {}

fn main() {}
