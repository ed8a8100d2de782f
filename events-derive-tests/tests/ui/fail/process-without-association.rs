use events::{process_manager, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
struct OrderPlaced {
    order: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Fulfilment;

#[process_manager(name = "shop.fulfilment")]
impl Fulfilment {
    #[start]
    fn placed(&mut self, _: &OrderPlaced) {}
}

fn main() {}
