use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

struct Indexer;

impl Indexer {
    #[event_handler]
    fn handle(&self, _e: &CardAdded) {}
}

fn main() {}
