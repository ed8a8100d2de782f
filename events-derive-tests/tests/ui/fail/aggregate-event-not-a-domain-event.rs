use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct MoneyDeposited {
    amount: u64,
}

events::event_set! {
    enum AccountEvent {
        Deposited(MoneyDeposited),
    }
}

fn main() {}
