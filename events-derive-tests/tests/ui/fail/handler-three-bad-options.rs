use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

// All three mistakes are reported in one build.
#[event_handler(retires = 3, name = 5, order = "first")]
fn handle(_e: &CardAdded) {}

fn main() {}
