use events::DomainEvent;

#[derive(DomainEvent)]
#[event(aggregate_id)]
struct CardAdded {
    _library_id: u64,
}

fn main() {}
