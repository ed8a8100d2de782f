use serde::{Deserialize, Serialize};

#[derive(events::DomainEvent, events::EventSet, Serialize, Deserialize)]
enum AccountEvent {
    #[event_set(verison = 2)]
    Opened { id: String },
}

fn main() {}
