//! The view repository over any backend: the one `connect(url)` returned.

use std::sync::Arc;

use super::{
    already_applied, decode_view, encode, event_at, AggregateView, EventAt, View, ViewStore,
};
use crate::meta::Meta;
use crate::outbox::Outbox;
use crate::store::durable::{DurableStore, IntoDurableStore, ViewWrite};
use crate::store::StoreError;

/// How many times [`ViewRepository::update`] reads a view again after another writer changed
/// it between its read and its write, before it gives up.
const UPDATE_ATTEMPTS: u32 = 8;

/// Loads and saves views of type `V` by id, with their version, on any backend: built from
/// what [`connect`](crate::store::connect) returned (or a backend by reference), so switching
/// from SQLite to PostgreSQL changes only the URL. Every operation commits on its own; the
/// forms that take the caller's transaction are on the backend's own type
/// ([`SqliteViews`](crate::sourcing::SqliteViews), `PostgresViews`).
///
/// ```
/// use events::sourcing::{EventAt, View, ViewRepository};
///
/// #[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq)]
/// struct Ledger { balance: i64 }
/// impl View for Ledger { const NAME: &'static str = "ledger"; }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = events::store::connect("sqlite::memory:").await?;
/// let ledgers = ViewRepository::<Ledger>::new(&store);
/// let first = EventAt { id: "acc-1", sequence: 1 };
/// assert!(ledgers.update(first, |l| l.balance += 10).await?);
/// assert!(!ledgers.update(first, |l| l.balance += 10).await?, "sequence 1 is already in");
/// assert_eq!(ledgers.load("acc-1").await?, Some((Ledger { balance: 10 }, 1)));
/// # Ok::<(), events::store::StoreError>(()) }).unwrap();
/// ```
pub type ViewRepository<V> = ViewStore<Arc<dyn DurableStore>, V>;

impl<V> std::fmt::Debug for ViewRepository<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewRepository")
            .field("view", &std::any::type_name::<V>())
            .field("store", &self.store.location())
            .finish()
    }
}

impl<V: View> ViewRepository<V> {
    /// A repository of `V` in `store`'s database (`&store` for what
    /// [`connect`](crate::store::connect) returned, or a backend by reference).
    pub fn new(store: impl IntoDurableStore) -> Self {
        Self::of(&store.into_durable_store())
    }

    /// The store it reads and writes.
    pub fn store(&self) -> &Arc<dyn DurableStore> {
        &self.store
    }

    /// The view `id` and its version, if it was ever saved.
    pub async fn load(&self, id: &str) -> Result<Option<(V, u64)>, StoreError> {
        self.store
            .load_view(V::NAME, id)
            .await?
            .map(|(body, version)| Ok((decode_view::<V>(id, body)?, version)))
            .transpose()
    }

    /// Saves the view `id` at `version`, whatever it held.
    pub async fn save(&self, id: &str, view: &V, version: u64) -> Result<(), StoreError> {
        self.store
            .save_view(V::NAME, id, &encode(view)?, version)
            .await
    }

    /// Applies the event `at` to the view `at.id` (a new view starts from `V::default()`),
    /// unless the view already holds it. `Ok(false)`: already applied, nothing changed.
    ///
    /// The write happens only if the view is still as it was read; when another writer
    /// changed it meanwhile, the view is read again and `change` runs again on it (unless it
    /// now holds the event), so `change` may be called more than once and no update is lost.
    pub async fn update(
        &self,
        at: EventAt<'_>,
        mut change: impl FnMut(&mut V),
    ) -> Result<bool, StoreError> {
        for attempt in 1..=UPDATE_ATTEMPTS {
            let loaded = self.load(at.id).await?;
            let expected = loaded.as_ref().map(|(_, version)| *version);
            let mut view = loaded.map(|(view, _)| view).unwrap_or_default();
            if already_applied::<V>(at, expected.unwrap_or(0)) {
                return Ok(false);
            }
            change(&mut view);
            let write = ViewWrite {
                view: V::NAME,
                id: at.id.to_owned(),
                body: encode(&view)?,
                expected,
                version: at.sequence,
            };
            if self.store.write_view(&write).await? {
                return Ok(true);
            }
            tracing::debug!(
                view = V::NAME,
                id = at.id,
                sequence = at.sequence,
                attempt,
                "another writer changed the view since it was read; reading it again"
            );
        }
        Err(StoreError::Refused(format!(
            "view `{}` of `{}` changed under every one of {UPDATE_ATTEMPTS} updates (event sequence {}); nothing was written: update it again",
            V::NAME,
            at.id,
            at.sequence
        )))
    }

    /// Stages `view` as the new state of `id` in `outbox`'s transaction, at version
    /// `loaded + 1` (`loaded`: the version [`load`](Self::load) returned, `None` for a view
    /// that did not exist), and returns that version. The store writes it with the outbox's
    /// events, and only if the view is still at `loaded`: when another writer changed it
    /// meanwhile, the whole outbox fails (its error's source is a
    /// [`StoreError::ViewConflict`]) and writes nothing; load it again and retry. So an
    /// aggregate kept as a view and the events it recorded commit together, on any backend.
    ///
    /// ```
    /// use events::sourcing::{View, ViewRepository};
    /// use events::{Bus, BoxError, DomainEvent};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq)]
    /// struct Cart { items: u32 }
    /// impl View for Cart { const NAME: &'static str = "cart"; }
    ///
    /// #[derive(DomainEvent)]
    /// struct ItemAdded;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = events::store::connect("sqlite::memory:").await?;
    /// let bus = Bus::builder().store(store.clone()).build()?;
    /// let carts = ViewRepository::<Cart>::new(&store);
    /// let (mut cart, loaded) = carts.load("c-1").await?.map_or((Cart::default(), None), |(c, v)| (c, Some(v)));
    /// cart.items += 1;
    /// store
    ///     .outbox(&bus, |outbox| {
    ///         carts.stage(outbox, "c-1", &cart, loaded)?;
    ///         outbox.publish(ItemAdded);
    ///         Ok::<_, BoxError>(())
    ///     })
    ///     .await?;
    /// assert_eq!(carts.load("c-1").await?, Some((Cart { items: 1 }, 1)));
    /// // A writer that still holds the old version loses, and writes nothing:
    /// let stale = store.outbox(&bus, |outbox| Ok::<_, BoxError>(carts.stage(outbox, "c-1", &cart, loaded)?)).await;
    /// assert!(stale.unwrap_err().to_string().contains("changed since it was read"));
    /// # Ok::<(), BoxError>(()) }).unwrap();
    /// ```
    pub fn stage(
        &self,
        outbox: &mut Outbox<'_>,
        id: &str,
        view: &V,
        loaded: Option<u64>,
    ) -> Result<u64, StoreError> {
        let version = loaded.map_or(1, |v| v + 1);
        outbox.write_view(ViewWrite {
            view: V::NAME,
            id: id.to_owned(),
            body: encode(view)?,
            expected: loaded,
            version,
        });
        Ok(version)
    }

    /// Deletes every view of this type (before a rebuild); returns how many there were.
    pub async fn clear(&self) -> Result<u64, StoreError> {
        self.store.clear_views(V::NAME).await
    }
}

impl<V: AggregateView> ViewRepository<V> {
    /// Applies a stored event to the view of its aggregate, at its sequence, both read from
    /// `meta`; `Ok(false)` when the view already holds it. Fails for an event that was not
    /// read from the store (no sequence in its `Meta`). This commits at once: a durable
    /// handler uses a [`ViewKeeper`](crate::sourcing::ViewKeeper) instead, whose write
    /// commits with its checkpoint.
    pub async fn update_with(&self, event: &V::Event, meta: &Meta) -> Result<bool, StoreError> {
        self.update(event_at::<V>(meta)?, |view| view.update(event))
            .await
    }
}
