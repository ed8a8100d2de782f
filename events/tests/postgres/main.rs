#![cfg(feature = "postgres")]
//! PostgreSQL against a real server, one binary: the event store (`store`: migrations,
//! optimistic concurrency, the outbox in the caller's transaction, upcasting on read), the gap
//! guarantee and wake-ups (`gaps`: concurrent, late-committing and rolled-back appends, one
//! NOTIFY per commit), and delivery by competing workers (`delivery`). The event store's
//! helpers are here.

#[path = "../support/postgres.rs"]
mod pg;

mod delivery;
mod gaps;
mod store;

use std::time::Duration;

use events::store::{EventMetadata, EventStore, NewEvent, PostgresStore, StoreError, StreamId};
use events::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "library.card_added", aggregate = "Library")]
struct CardAdded {
    #[event(aggregate_id)]
    library: u32,
    card: String,
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    enum LibraryEvent {
        CardAdded(CardAdded),
    }
}

fn card(library: u32, card: &str) -> NewEvent {
    NewEvent::new(
        &CardAdded {
            library,
            card: card.into(),
        },
        EventMetadata::default(),
    )
    .unwrap()
}

fn library(id: &str) -> StreamId<'_> {
    StreamId {
        aggregate_type: "Library",
        aggregate_id: id,
    }
}

fn positions(events: &[events::store::StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}
