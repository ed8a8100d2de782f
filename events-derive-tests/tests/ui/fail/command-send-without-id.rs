use events::{Bus, Command, DomainEvent, EventSet, EventSourced, Handle};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, EventSet, Serialize, Deserialize, Debug)]
enum AccountEvent {
    Deposited { amount: u64 },
}

#[derive(Default)]
struct Account;

impl EventSourced for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;
    fn apply(&mut self, _: &AccountEvent) {}
}

// A cqrs-es command: no id field.
#[derive(Command, Clone)]
#[command(aggregate = Account)]
struct Deposit {
    amount: u64,
}

impl Handle<Deposit> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, cmd: Deposit, _: &()) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![AccountEvent::Deposited { amount: cmd.amount }])
    }
}

async fn deposit(bus: &Bus) {
    let _ = bus.send(Deposit { amount: 5 }).await;
}

fn main() {}
