use serde::{Deserialize, Serialize};

#[derive(events::DomainEvent, events::EventSet, Serialize, Deserialize)]
enum AccountEvent {
    Opened { id: String },
    #[event_set(name = "Opened")]
    Reopened { id: String },
}

fn main() {}
