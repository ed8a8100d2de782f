use events::DomainEvent;

#[derive(DomainEvent)]
struct CardAdded {
    #[event(aggregate_id = "library")]
    _library_id: u64,
}

fn main() {}
