//! The PostgreSQL view repository with the forms that take the caller's transaction: the table
//! `events_views`, created by [`PostgresStore::migrate`].

use tokio_postgres::{GenericClient, Transaction};

use super::{
    already_applied, decode_view, encode, event_at, AggregateView, EventAt, View, ViewStore,
};
use crate::meta::Meta;
use crate::store::postgres::backend;
use crate::store::postgres::views::{clear_views, load_view, save_view, save_view_if_newer};
use crate::store::{PostgresStore, StoreError};

/// Loads and saves views of type `V` by id, with their version, on PostgreSQL: the operations
/// of [`ViewRepository`](crate::sourcing::ViewRepository), plus `_in` forms that take the
/// caller's transaction, so a view changes together with the caller's own rows and appended
/// events. Run [`PostgresStore::migrate`] first (it creates the table).
///
/// ```no_run
/// use events::sourcing::{EventAt, PostgresViews, View};
/// use events::store::PostgresStore;
///
/// #[derive(serde::Serialize, serde::Deserialize, Default)]
/// struct Ledger { balance: i64 }
/// impl View for Ledger { const NAME: &'static str = "ledger"; }
///
/// # async fn run() -> Result<(), events::store::StoreError> {
/// let store = PostgresStore::connect("postgres://app@127.0.0.1/bank").await?;
/// store.migrate().await?;
/// let ledgers = PostgresViews::<Ledger>::new(&store);
/// ledgers.update(EventAt { id: "acc-1", sequence: 1 }, |l| l.balance += 10).await?;
/// # Ok(()) }
/// ```
pub type PostgresViews<V> = ViewStore<PostgresStore, V>;

impl<V: View> PostgresViews<V> {
    /// A repository of `V` in `store`'s database (its table comes with `migrate`).
    pub fn new(store: &PostgresStore) -> Self {
        Self::of(store)
    }

    /// The view `id` and its version, if it was ever saved.
    pub async fn load(&self, id: &str) -> Result<Option<(V, u64)>, StoreError> {
        load(&**self.store.client().await?, id, "").await
    }

    /// Like [`load`](Self::load), inside the caller's transaction.
    pub async fn load_in(tx: &Transaction<'_>, id: &str) -> Result<Option<(V, u64)>, StoreError> {
        load(tx, id, "").await
    }

    /// Saves the view `id` at `version`.
    pub async fn save(&self, id: &str, view: &V, version: u64) -> Result<(), StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        Self::save_in(&tx, id, view, version).await?;
        tx.commit().await.map_err(backend)
    }

    /// Like [`save`](Self::save), inside the caller's transaction.
    pub async fn save_in(
        tx: &Transaction<'_>,
        id: &str,
        view: &V,
        version: u64,
    ) -> Result<(), StoreError> {
        save_view(tx, V::NAME, id, &encode(view)?, version).await
    }

    /// Applies the event `at` to the view `at.id` (a new view starts from `V::default()`),
    /// unless the view already holds it. `Ok(false)`: already applied, nothing changed.
    pub async fn update(
        &self,
        at: EventAt<'_>,
        change: impl FnOnce(&mut V),
    ) -> Result<bool, StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let changed = Self::update_in(&tx, at, change).await?;
        tx.commit().await.map_err(backend)?;
        Ok(changed)
    }

    /// Like [`update`](Self::update), inside the caller's transaction. The row is locked
    /// until the transaction ends, and a row another writer inserted meanwhile at this
    /// sequence or later is left as it is.
    pub async fn update_in(
        tx: &Transaction<'_>,
        at: EventAt<'_>,
        change: impl FnOnce(&mut V),
    ) -> Result<bool, StoreError> {
        let EventAt { id, sequence } = at;
        let (mut view, version) = load(tx, id, "FOR UPDATE").await?.unwrap_or_default();
        if already_applied::<V>(at, version) {
            return Ok(false);
        }
        change(&mut view);
        let written = save_view_if_newer(tx, V::NAME, id, &encode(&view)?, sequence).await?;
        if !written {
            tracing::debug!(
                view = V::NAME,
                id,
                sequence,
                "another writer saved the view at this sequence or later meanwhile; skipped"
            );
        }
        Ok(written)
    }

    /// Deletes every view of this type (before a rebuild).
    pub async fn clear(&self) -> Result<(), StoreError> {
        clear_views(&**self.store.client().await?, V::NAME)
            .await
            .map(drop)
    }
}

impl<V: AggregateView> PostgresViews<V> {
    /// Applies a stored event to the view of its aggregate, at its sequence, both read from
    /// `meta`; `Ok(false)` when the view already holds it. This commits at once: a durable
    /// handler uses a [`ViewKeeper`](crate::sourcing::ViewKeeper) instead, whose write
    /// commits with its checkpoint.
    pub async fn update_with(&self, event: &V::Event, meta: &Meta) -> Result<bool, StoreError> {
        self.update(event_at::<V>(meta)?, |view| view.update(event))
            .await
    }
}

async fn load<V: View>(
    client: &impl GenericClient,
    id: &str,
    lock: &str,
) -> Result<Option<(V, u64)>, StoreError> {
    load_view(client, V::NAME, id, lock)
        .await?
        .map(|(body, version)| Ok((decode_view::<V>(id, body)?, version)))
        .transpose()
}
