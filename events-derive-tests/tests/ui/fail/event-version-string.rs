use events::DomainEvent;

#[derive(DomainEvent)]
#[event(version = "2")]
struct CardAdded;

fn main() {}
