use events::DomainEvent;

#[derive(DomainEvent)]
struct PriceChanged {
    #[event(aggregate_id)]
    _price: f64,
}

fn main() {}
