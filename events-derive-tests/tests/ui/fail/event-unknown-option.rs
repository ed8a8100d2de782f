use events::DomainEvent;

#[derive(DomainEvent)]
#[event(name = "library.card_added", topic = "cards")]
struct CardAdded;

fn main() {}
