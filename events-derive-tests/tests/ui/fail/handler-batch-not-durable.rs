use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

#[event_handler]
fn index(cards: &[CardAdded]) {
    let _ = cards.len();
}

fn main() {}
