use events::{DomainEvent, EventSourced, Handle};
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

struct AddCard;

impl Handle<AddCard> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, _: AddCard, _: &()) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![CardAddedToLibrary {
            card: "Black Lotus".into(),
        }
        .into()])
    }
}

fn main() {}
