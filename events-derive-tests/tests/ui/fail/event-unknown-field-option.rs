use events::DomainEvent;

#[derive(DomainEvent)]
struct CardAdded {
    #[event(aggregate)]
    _library_id: u64,
}

fn main() {}
