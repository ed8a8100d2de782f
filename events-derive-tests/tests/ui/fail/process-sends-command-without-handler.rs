use events::{process_manager, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
struct OrderPlaced {
    order: String,
}

#[derive(Command, Serialize, Deserialize)]
struct ShipOrder {
    order: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Fulfilment;

#[process_manager(name = "shop.fulfilment", association = order, sends(ShipOrder))]
impl Fulfilment {
    #[start]
    fn placed(&mut self, _: &OrderPlaced) {}
}

fn main() {}
