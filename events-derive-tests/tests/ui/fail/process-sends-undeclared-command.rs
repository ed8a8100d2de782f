use events::process::Reaction;
use events::{command_handler, process_manager, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
struct OrderPlaced {
    order: String,
}

#[derive(Command, Serialize, Deserialize)]
struct ShipOrder {
    order: String,
}

#[command_handler]
fn ship(_: ShipOrder) -> Result<(), String> {
    Ok(())
}

#[derive(Default, Serialize, Deserialize)]
struct Fulfilment;

#[process_manager(name = "shop.fulfilment", association = order)]
impl Fulfilment {
    #[start]
    fn placed(&mut self, e: &OrderPlaced, out: &mut Reaction<Self>) {
        out.send(ShipOrder { order: e.order.clone() });
    }
}

fn main() {}
