#![cfg(feature = "sqlite")]
//! Durable delivery: checkpoints, catch-up, replay, retries, dead letters, hold-back,
//! undecodable payloads, upcasting, wake-ups, leases and fencing, the circuit breaker.
//!
//! The behavioural tests run once per backend in [`stores`]: each takes the store as an
//! `Arc<dyn DurableStore>`, so a new backend joins the suite by adding itself there. Tests
//! of one backend's own API (SQLite's transactional outbox, raw rows) say so in their name.
//!
//! One binary for the durable area, a module per topic. The modules from `durable.rs` share
//! the helpers here (`claims`, `delivery`, `payloads`, `sqlite`, `views`, `worker`); the others
//! are whole suites with helpers of their own: the publishing paths on both backends
//! (`app_publish`, `store_backed_publish`, `store_reentry`), the log queries (`log_query`),
//! event sets with durable handlers (`set_durable`), timers (`timers`), and the worker's
//! concurrency, faults and membership (`worker_concurrency`, `worker_faults`,
//! `worker_membership`).
//!
//! The handlers of every module are linked into this one binary (a binary's link-time catalog
//! is part of a test's fixture): a module joins only if its buses build with the others'
//! handlers present, and it names its own handlers with `Worker::handlers` where a summary
//! counts them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::sourcing::ViewKeeper;
use events::store::durable::{
    AppendAt, Claim, ClaimRequest, Claimed, DurableStore, OnReset, Owner, PendingFailure, Rewind,
    SegmentId,
};
use events::store::{EventMetadata, SqliteStore, StoreError, ViewWrite};
use events::worker::{FailureStatus, Summary, Worker, WorkerError};
use events::{event_handler, Bus, DomainEvent, Meta};
use serde::{Deserialize, Serialize};

mod claims;
mod delivery;
mod payloads;
mod sqlite;
mod views;
mod worker;

mod app_publish;
mod log_query;
mod set_durable;
mod store_backed_publish;
mod store_reentry;
mod timers;
mod worker_concurrency;
mod worker_faults;
mod worker_membership;

fn bus() -> Bus {
    Bus::builder().build().expect("bus builds")
}

#[cfg(feature = "postgres")]
#[path = "../support/postgres.rs"]
mod pg;

/// The backends a module's behaviour runs on (`backends(test)`), for the modules that take it.
#[path = "../support/backends.rs"]
mod backends;

/// A fresh, empty store of every backend the suite runs on: SQLite in memory, and PostgreSQL
/// (4 segments) in a schema of its own when the feature is on (`support/postgres.rs`).
async fn stores() -> Vec<Arc<dyn DurableStore>> {
    let sqlite: Arc<dyn DurableStore> =
        Arc::new(SqliteStore::open_in_memory().expect("store opens"));
    #[allow(unused_mut)]
    let mut stores = vec![sqlite];
    #[cfg(feature = "postgres")]
    {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(store) = pg::store(&format!("durable_{n}")).await {
            stores.push(Arc::new(store));
        }
    }
    stores
}

/// Delivers everything due now to one handler.
async fn drain(bus: &Bus, store: &Arc<dyn DurableStore>, handler: &str) -> Summary {
    Worker::new(bus, store)
        .handlers([handler])
        .drain()
        .await
        .expect("worker runs")
}

/// Appends one typed event after whatever its stream holds.
async fn append<E: DomainEvent + Serialize>(
    store: &Arc<dyn DurableStore>,
    event: &E,
) -> events::store::StoredEvent {
    store
        .append_event(event, EventMetadata::default())
        .await
        .expect("append")
}

/// Takes the claim on a handler's (first) segment; panics when another owner holds it.
async fn take(store: &Arc<dyn DurableStore>, handler: &str, owner: &Owner, ttl: Duration) -> Claim {
    let request = ClaimRequest {
        segment: SegmentId {
            handler,
            segment: 0,
        },
        owner,
        ttl,
    };
    match store.claim(request).await.unwrap() {
        Claimed::Acquired(claim) => claim,
        Claimed::HeldBy(lease) => panic!("{handler} is held by {lease}"),
    }
}

/// The stored checkpoint of one (handler, segment): the fencing tests settle on segment 0
/// whatever segment the event hashes to.
async fn segment_checkpoint(store: &Arc<dyn DurableStore>, handler: &str, segment: u32) -> u64 {
    let checkpoints = store.checkpoints().await.unwrap();
    checkpoints
        .iter()
        .find(|c| c.handler == handler && c.segment == segment)
        .map_or(0, |c| c.position)
}

/// Resets a handler's checkpoint as an operator would: under the claims of all its segments.
async fn reset(
    store: &Arc<dyn DurableStore>,
    handler: &str,
    after: u64,
    failures: OnReset,
) -> Result<events::store::durable::Discarded, StoreError> {
    store
        .reset_handler(handler, Rewind { after, failures }, &Owner::current())
        .await
}

async fn dead_letters(store: &Arc<dyn DurableStore>, handler: &str) -> Vec<PendingFailure> {
    let failures = store.failures(Some(handler)).await.unwrap();
    failures
        .into_iter()
        .filter(|f| f.status == FailureStatus::Dead)
        .collect()
}
