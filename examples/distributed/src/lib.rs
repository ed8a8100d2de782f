//! Two services linked by NATS JetStream, each with its own SQLite store:
//!
//! - `ordering` places orders: one transaction writes the order row and its `OrderPlaced` event
//!   (the transactional outbox); `ordering relay` publishes its log to the stream `ORDERS`; its
//!   own durable handler sends receipts.
//! - `shipping process --all --source nats://...` takes the stream into the shipping store and
//!   runs the shipping service's durable handler: it schedules deliveries, retries a failing
//!   carrier, and dead-letters orders to addresses it cannot serve, in the shipping store.
//!
//! `run.sh` starts NATS and the three processes, places orders, and prints what each side did.
//! This library is the contract the two services share: the event types.

use events::DomainEvent;
use serde::{Deserialize, Serialize};

/// A customer placed an order (published by `ordering`, consumed by `shipping`).
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "orders.order_placed", aggregate = "Order")]
pub struct OrderPlaced {
    /// The order.
    #[event(aggregate_id)]
    pub order: u64,
    /// Who ordered.
    pub customer: String,
    /// Where to ship.
    pub address: String,
}

/// Sets up logging to stderr (`RUST_LOG`, default `warn`).
pub fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Opens the service's store from the environment variable `var`, or exits with a one-line
/// error.
pub fn open_store(var: &str) -> (String, events::store::SqliteStore) {
    let Ok(path) = std::env::var(var) else {
        eprintln!("error: {var} is not set: export {var}=/path/to/store.db");
        std::process::exit(2);
    };
    match events::store::SqliteStore::open(&path) {
        Ok(store) => (path, store),
        Err(e) => {
            eprintln!("error: cannot open {path}: {e}");
            std::process::exit(1);
        }
    }
}
