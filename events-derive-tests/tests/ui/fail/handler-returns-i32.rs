use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler]
fn handle(_e: &CardAdded) -> i32 {
    0
}

fn main() {}
