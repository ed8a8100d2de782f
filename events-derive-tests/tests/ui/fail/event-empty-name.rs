use events::DomainEvent;

#[derive(DomainEvent)]
#[event(name = "")]
struct CardAdded;

fn main() {}
