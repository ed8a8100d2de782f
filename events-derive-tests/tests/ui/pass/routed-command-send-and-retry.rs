// A routed enum with the id in every variant goes with `send`; one without an id field goes
// with `send_to`; `retry_on_conflict` sets the command's re-runs; a plain command with its own
// handler still goes with `send`.
use events::{command_handler, AggregateCommand, Bus, Command, EventSet, EventSourced, Handle};
use serde::{Deserialize, Serialize};

#[derive(events::DomainEvent, EventSet, Serialize, Deserialize, Debug)]
enum AccountEvent {
    Opened,
    Deposited(u64),
}

#[derive(Default)]
struct Account;

impl EventSourced for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;
    fn apply(&mut self, _: &AccountEvent) {}
}

#[derive(Command, Clone)]
#[command(aggregate = Account, retry_on_conflict = 2)]
enum AccountCommand {
    Open {
        #[command(id)]
        id: String,
    },
    Deposit(#[command(id)] String, u64),
}

#[derive(Command, Clone)]
#[command(aggregate = Account)]
struct Deposit {
    amount: u64,
}

impl Handle<AccountCommand> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, cmd: AccountCommand, _: &()) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![match cmd {
            AccountCommand::Open { .. } => AccountEvent::Opened,
            AccountCommand::Deposit(_, amount) => AccountEvent::Deposited(amount),
        }])
    }
}

impl Handle<Deposit> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, cmd: Deposit, _: &()) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![AccountEvent::Deposited(cmd.amount)])
    }
}

#[derive(Command)]
struct Ping;

#[command_handler]
fn ping(_: Ping) -> Result<(), events::BoxError> {
    Ok(())
}

async fn sends(bus: &Bus) {
    let opened: Result<u64, events::SendError<String>> =
        bus.send(AccountCommand::Open { id: "a".into() }).await;
    let refused: Option<&String> = opened.as_ref().err().and_then(|e| e.rejected());
    let _ = refused;
    let _ = bus.send_to("a", Deposit { amount: 1 }).await;
    let _ = bus.send_to("a", AccountCommand::Deposit("ignored".into(), 1)).await;
    let _ = bus.send(Ping).await;
}

fn main() {
    assert_eq!(<AccountCommand as AggregateCommand>::RETRY_ON_CONFLICT, 2);
    assert_eq!(<Deposit as AggregateCommand>::RETRY_ON_CONFLICT, 0);
    let _ = sends;
}
