use events::{process_manager, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
struct OrderPlaced {
    order: String,
}

#[derive(DomainEvent, Serialize, Deserialize)]
struct ParcelDelivered {
    parcel: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Fulfilment;

#[process_manager(name = "shop.fulfilment", association = order)]
impl Fulfilment {
    #[start]
    fn placed(&mut self, _: &OrderPlaced) {}
    fn delivered(&mut self, _: &ParcelDelivered) {}
}

fn main() {}
