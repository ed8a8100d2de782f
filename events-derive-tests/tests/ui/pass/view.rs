use events::sourcing::{AggregateView, View};
use events::{DomainEvent, EventSet};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, EventSet, Serialize, Deserialize)]
#[event(aggregate = "Account")]
enum AccountEvent {
    Opened {
        #[event(aggregate_id)]
        id: String,
    },
    Deposited {
        #[event(aggregate_id)]
        id: String,
        cents: i64,
    },
}

/// Named after the type, no handler.
#[derive(View, Serialize, Deserialize, Default)]
struct Plain {
    n: u64,
}

/// Its own name, kept live by a durable handler.
#[derive(View, Serialize, Deserialize, Default)]
#[view(name = "balance", durable = "bank.balance")]
struct Balance {
    cents: i64,
}

impl AggregateView for Balance {
    type Event = AccountEvent;
    fn update(&mut self, event: &AccountEvent) {
        if let AccountEvent::Deposited { cents, .. } = event {
            self.cents += cents;
        }
    }
}

fn main() {
    assert_eq!(Plain::NAME, "Plain");
    assert_eq!(Balance::NAME, "balance");
    let handlers = events::catalog().handlers();
    let keeper = handlers.iter().find(|h| h.name() == "bank.balance");
    assert!(keeper.is_some_and(|h| h.event_name() == "AccountEvent"));
}
