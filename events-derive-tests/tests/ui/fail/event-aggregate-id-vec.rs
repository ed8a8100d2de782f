use events::DomainEvent;

#[derive(DomainEvent)]
enum Changed {
    Bulk {
        #[event(aggregate_id)]
        _ids: Vec<u64>,
    },
}

fn main() {}
