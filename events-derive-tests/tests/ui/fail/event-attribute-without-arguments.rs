use events::DomainEvent;

#[derive(DomainEvent)]
#[event]
struct CardAdded;

fn main() {}
