use events::{Command, EventSet, EventSourced, Handle};
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

#[derive(Command, Clone)]
#[command(aggregate = Account)]
struct Open {
    #[command(id)]
    id: String,
}

impl Handle<Open> for Account {
    type Error = String;
    type Services = ();
    async fn handle(&self, cmd: Open, _: &()) -> Result<Vec<AccountEvent>, String> {
        Ok(vec![AccountEvent::Opened { id: cmd.id }])
    }
}

// The command is routed to `Account`: a handler of its own would be a second one.
#[events::command_handler]
fn open(_: Open) -> Result<u64, events::sourcing::RoutedError<Open>> {
    Ok(0)
}

fn main() {}
