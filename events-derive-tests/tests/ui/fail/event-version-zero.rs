use events::DomainEvent;

#[derive(DomainEvent)]
#[event(version = 0)]
struct CardAdded;

fn main() {}
