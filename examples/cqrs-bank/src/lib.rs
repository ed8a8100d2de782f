//! The cqrs-es bank-account demo on `events` (see the README).

/// The store URL: `EVENTS_DATABASE_URL`, or an SQLite database in memory.
pub fn database_url() -> String {
    std::env::var("EVENTS_DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned())
}

pub mod domain;
pub mod ledger;

use events::store::EventStore;
use events::{BuildError, Bus};

use crate::domain::{BankAccountApi, BankAccountServices};

/// The bank's bus: commands routed to the account, its events (and ledgers) in `store`: what
/// `events::store::connect(url)` returns, or a backend itself.
pub fn bank<S: EventStore + Clone + 'static>(
    store: &S,
    api: impl BankAccountApi + 'static,
) -> Result<Bus, BuildError> {
    Bus::builder()
        .event_store(store.clone())
        .resource::<BankAccountServices>(Box::new(api))
        .build()
}
