//! The cqrs-es bank-account demo on `events` (see the README).

pub mod domain;
pub mod ledger;

use events::sourcing::ViewRepository;
use events::store::SqliteStore;
use events::Bus;

use crate::domain::{BankAccountApi, BankAccountServices};
use crate::ledger::BankAccountView;

/// The bank's bus: its commands are routed to the account, whose events go to `store`, and
/// the ledger is kept in `store`'s database.
pub fn bank(store: &SqliteStore, api: impl BankAccountApi + 'static) -> Result<Bus, Error> {
    Ok(Bus::builder()
        .event_store(store.clone())
        .resource::<BankAccountServices>(Box::new(api))
        .resource(ViewRepository::<BankAccountView>::new(store)?)
        .build()?)
}

/// What `bank` and the demo fail with.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
