//! Which store the CLI works on: one the application already opened, or a URL the CLI opens
//! itself for the command that needs it (so a read-only command never creates a file).

use std::sync::Arc;

use crate::store::durable::{DurableStore, IntoDurableStore};
use crate::store::{connect, connect_existing, StoreError};

use super::args::StoreArgs;

/// The store the CLI works on.
///
/// Prefer [`StoreSource::url`]: the CLI then opens the store only for the commands that need
/// one, and only `process`, `migrate` and `relay` create it when it does not exist; `status`,
/// `dead-letters`, `log` and the others refuse a missing file with a one-line error. A store
/// the application opened itself (any [`IntoDurableStore`], e.g. `&SqliteStore`) is used as
/// it is.
#[derive(Clone, Debug)]
pub enum StoreSource {
    /// A store the application already opened.
    Opened(Arc<dyn DurableStore>),
    /// A URL for [`store::connect`](crate::store::connect), opened when a command needs it.
    Url(String),
}

impl StoreSource {
    /// The store at `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://...`), opened by
    /// the command that needs it.
    pub fn url(url: impl Into<String>) -> Self {
        StoreSource::Url(url.into())
    }

    /// Opens the store; with `create == false` a store that does not exist is an error.
    pub(super) async fn open(self, create: bool) -> Result<Arc<dyn DurableStore>, StoreError> {
        match self {
            StoreSource::Opened(store) => Ok(store),
            StoreSource::Url(url) if create => connect(&url).await,
            StoreSource::Url(url) => connect_existing(&url).await,
        }
    }
}

impl<S: IntoDurableStore> From<S> for StoreSource {
    fn from(store: S) -> Self {
        StoreSource::Opened(store.into_durable_store())
    }
}

impl StoreArgs {
    /// The store `--database-url` names, or `default` (the application's own) without it.
    pub fn or(&self, default: impl Into<StoreSource>) -> StoreSource {
        match &self.database_url {
            Some(url) if !url.is_empty() => StoreSource::url(url.clone()),
            _ => default.into(),
        }
    }
}
