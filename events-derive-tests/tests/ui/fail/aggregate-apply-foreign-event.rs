use events::{DomainEvent, EventSourced};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
struct MoneyDeposited {
    amount: u64,
}

events::event_set! {
    enum AccountEvent {
        Deposited(MoneyDeposited),
    }
}

#[derive(Default)]
struct Account {
    balance: u64,
}

impl EventSourced for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;
    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited(e) => self.balance += e.amount,
            AccountEvent::CardAdded(_) => {}
        }
    }
}

fn main() {}
