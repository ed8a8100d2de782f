use std::time::Duration;

use events::process::Reaction;
use events::{command_handler, process_manager, Command, DomainEvent, Meta, Res};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
struct OrderPlaced {
    order: u64,
}

#[derive(DomainEvent, Serialize, Deserialize)]
struct PaymentOverdue {
    order: u64,
}

#[derive(DomainEvent, Serialize, Deserialize)]
struct OrderPaid {
    order: u64,
}

#[derive(Command, Serialize, Deserialize)]
struct ShipOrder {
    order: u64,
}

#[command_handler]
fn ship(_: ShipOrder) -> Result<(), String> {
    Ok(())
}

struct Grace(Duration);

#[derive(Default, Serialize, Deserialize)]
struct Checkout {
    paid: bool,
}

#[process_manager(name = "shop.checkout", association = order, sends(ShipOrder), delete_completed)]
impl Checkout {
    #[start]
    fn placed(&mut self, e: &OrderPlaced, grace: Res<Grace>, out: &mut Reaction<Self>) {
        out.schedule("payment", grace.0, &PaymentOverdue { order: e.order });
    }

    async fn overdue(&mut self, _: &PaymentOverdue, _meta: Meta) -> Result<(), String> {
        Ok(())
    }

    #[complete]
    fn paid(&mut self, e: &OrderPaid, out: &mut Reaction<Self>) {
        self.paid = true;
        out.cancel("payment");
        out.send(ShipOrder { order: e.order });
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Chain;

#[process_manager(name = "shop.chain", correlation)]
impl Chain {
    #[start]
    fn placed(&mut self, _: &OrderPlaced) {}
}

fn main() {}
