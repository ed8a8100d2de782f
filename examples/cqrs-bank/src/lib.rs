//! The cqrs-es bank-account demo on `events` (see the README).

pub mod domain;
pub mod ledger;

use events::store::SqliteStore;
use events::{BuildError, Bus};

use crate::domain::{BankAccountApi, BankAccountServices};

/// The bank's bus: commands routed to the account, its events (and ledgers) in `store`.
pub fn bank(store: &SqliteStore, api: impl BankAccountApi + 'static) -> Result<Bus, BuildError> {
    Bus::builder()
        .event_store(store.clone())
        .resource::<BankAccountServices>(Box::new(api))
        .build()
}
