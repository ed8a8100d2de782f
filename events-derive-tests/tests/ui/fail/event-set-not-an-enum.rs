use serde::{Deserialize, Serialize};

#[derive(events::DomainEvent, events::EventSet, Serialize, Deserialize)]
struct AccountOpened {
    id: String,
}

fn main() {}
