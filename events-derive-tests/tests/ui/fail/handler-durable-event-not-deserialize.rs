use events::{event_handler, DomainEvent};

// Durable handlers read the event back from the store: it must implement `Deserialize`.
#[derive(DomainEvent, serde::Serialize)]
struct Shipped {
    order: u64,
}

#[event_handler(durable, name = "shipping.notify")]
fn notify(e: &Shipped) {
    let _ = e.order;
}

fn main() {}
