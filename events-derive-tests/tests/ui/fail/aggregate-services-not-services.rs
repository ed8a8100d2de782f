use events::{EventSet, EventSourced, Handle};
use serde::{Deserialize, Serialize};

#[derive(events::DomainEvent, EventSet, Serialize, Deserialize)]
enum AccountEvent {
    Opened { id: String },
}

#[derive(Default)]
struct Account;

impl EventSourced for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;
    fn apply(&mut self, _: &AccountEvent) {}
}

struct Atm;

struct Open;

impl Handle<Open> for Account {
    type Error = String;
    type Services = Atm;
    async fn handle(&self, _: Open, _: &Atm) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![])
    }
}

fn main() {}
