use events::{Command, EventSet, EventSourced, Handle, Services};
use serde::{Deserialize, Serialize};

#[derive(events::DomainEvent, EventSet, Serialize, Deserialize, Debug, PartialEq)]
enum AccountEvent {
    Opened { id: String },
    #[event_set(name = "bank.deposited", version = 3)]
    Deposited(u64),
    Closed,
}

#[derive(Default)]
struct Account;

impl EventSourced for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;
    fn apply(&mut self, _: &AccountEvent) {}
}

struct Atm;
impl Services for Atm {}

#[derive(Command, Clone)]
#[command(aggregate = Account)]
enum AccountCommand {
    Open {
        #[command(id)]
        id: String,
    },
    Deposit(#[command(id)] String, u64),
    Close,
}

impl Handle<AccountCommand> for Account {
    type Error = String;
    type Services = Atm;
    async fn handle(&self, cmd: AccountCommand, _: &Atm) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![match cmd {
            AccountCommand::Open { id } => AccountEvent::Opened { id },
            AccountCommand::Deposit(_, amount) => AccountEvent::Deposited(amount),
            AccountCommand::Close => AccountEvent::Closed,
        }])
    }
}

fn main() {
    use events::AggregateCommand;
    assert_eq!(AccountCommand::Deposit("a".into(), 1).aggregate_id().as_deref(), Some("a"));
    assert_eq!(AccountCommand::Close.aggregate_id(), None);
}
