use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler(name = "search.index", order = 1, name = "search.index_again")]
fn handle(_e: &CardAdded) {}

fn main() {}
