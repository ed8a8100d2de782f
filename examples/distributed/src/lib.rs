//! Two services linked by a broker (NATS JetStream, Redis Streams or RabbitMQ, chosen by URL),
//! each with its own store:
//!
//! - `ordering` (PostgreSQL) places orders: one transaction writes the order row and publishes
//!   its `OrderPlaced` event through the transactional outbox (`PostgresStore::outbox`);
//!   `ordering relay` publishes its log to the stream `ORDERS`; its own durable handler sends
//!   receipts.
//! - `shipping` (SQLite) `process --all --source nats://...|redis://...|amqp://...` takes the
//!   stream into the shipping store and runs the shipping service's durable handler: it schedules deliveries, retries a failing
//!   carrier, and dead-letters orders to addresses it cannot serve, in the shipping store.
//!
//! `run.sh` starts the servers (when not given) and the three processes, places orders, and
//! prints what each side did.
//! This library is the contract the two services share (the event types), and how each opens
//! its store.

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

/// Connects to the ordering service's PostgreSQL store: the server at `$ORDERING_URL`, in the
/// schema `$ORDERING_SCHEMA` (default `ordering`, created if missing), or exits with a one-line
/// error.
pub async fn open_ordering_store() -> events::store::PostgresStore {
    use events::store::PostgresStore;
    let Ok(url) = std::env::var("ORDERING_URL") else {
        eprintln!("error: ORDERING_URL is not set: export ORDERING_URL=postgres://user@host:port/database");
        std::process::exit(2);
    };
    let schema = std::env::var("ORDERING_SCHEMA").unwrap_or_else(|_| "ordering".to_owned());
    if schema.is_empty()
        || !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        eprintln!("error: ORDERING_SCHEMA={schema:?}: use letters, digits and `_` only");
        std::process::exit(2);
    }
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("error: the ordering store at {url}: {e}");
        std::process::exit(1);
    };
    let admin = PostgresStore::connect(&url)
        .await
        .unwrap_or_else(|e| fail(&e));
    let client = admin.client().await.unwrap_or_else(|e| fail(&e));
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .unwrap_or_else(|e| fail(&e));
    let sep = if url.contains('?') { '&' } else { '?' };
    PostgresStore::connect(&format!("{url}{sep}options=-c%20search_path%3D{schema}"))
        .await
        .unwrap_or_else(|e| fail(&e))
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
