use events::DomainEvent;

#[derive(DomainEvent)]
struct CardMoved {
    #[event(aggregate_id)]
    _from_library: u64,
    #[event(aggregate_id)]
    _to_library: u64,
}

fn main() {}
