use std::time::Duration;

use events::process::Reaction;
use events::{process_manager, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
struct OrderPlaced {
    order: String,
}

#[derive(DomainEvent, Serialize, Deserialize)]
struct PaymentOverdue {
    order: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Checkout;

#[process_manager(name = "shop.checkout", association = order)]
impl Checkout {
    #[start]
    fn placed(&mut self, e: &OrderPlaced, out: &mut Reaction<Self>) {
        let overdue = PaymentOverdue { order: e.order.clone() };
        out.schedule("payment", Duration::from_secs(900), &overdue);
    }
}

fn main() {}
