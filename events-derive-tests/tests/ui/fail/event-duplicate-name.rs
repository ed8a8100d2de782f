use events::DomainEvent;

#[derive(DomainEvent)]
#[event(name = "library.card_added")]
#[event(name = "library.card_created")]
struct CardAdded;

fn main() {}
