use events::{DomainEvent, EventOf, EventSourced};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
struct MoneyDeposited {
    amount: u64,
}

#[derive(DomainEvent, Serialize, Deserialize)]
struct CardAddedToLibrary {
    card: String,
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
        }
    }
}

fn raise<E: EventOf<AccountEvent>>(events: &mut Vec<AccountEvent>, event: E) {
    events.push(event.into());
}

fn main() {
    let mut events = Vec::new();
    raise(
        &mut events,
        CardAddedToLibrary {
            card: "Black Lotus".into(),
        },
    );
}
