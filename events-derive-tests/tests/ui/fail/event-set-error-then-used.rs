// The derive fails; the aggregate that uses the enum as its events must not add an error
// ("`EventSet` is not implemented") of its own.
use serde::{Deserialize, Serialize};

#[derive(events::DomainEvent, events::EventSet, Serialize, Deserialize)]
enum AccountEvent {
    Opened { id: String },
    #[event_set(name = "Opened")]
    Reopened { id: String },
}

#[derive(Default)]
struct Account;

impl events::EventSourced for Account {
    const TYPE: &'static str = "account";
    type Event = AccountEvent;
    fn apply(&mut self, _: &AccountEvent) {}
}

fn main() {}
