//! The SQLite view repository, sync, with the forms that take the caller's transaction: one
//! table the store's schema creates.

use rusqlite::{Connection, Transaction};

use super::{
    already_applied, decode_view, encode, event_at, AggregateView, EventAt, View, ViewStore,
};
use crate::error::BoxError;
use crate::meta::Meta;
use crate::sourcing::projection::Projection;
use crate::store::sqlite::views::{clear_views, load_view, save_view};
use crate::store::{SqliteStore, StoreError, StoredEvent};

impl<V: AggregateView> Projection for SqliteViews<V> {
    type Event = V::Event;

    fn reset(&self) -> Result<(), BoxError> {
        Ok(self.clear()?)
    }

    fn apply(&self, event: &V::Event, stored: &StoredEvent) -> Result<(), BoxError> {
        self.update(stored.into(), |view| view.update(event))?;
        Ok(())
    }
}

/// Loads and saves views of type `V` by id, with their version, on SQLite, synchronously: the
/// operations of [`ViewRepository`](crate::sourcing::ViewRepository), plus `_in` forms that
/// take the caller's transaction (`SqliteStore::transaction`), so a view changes together with
/// the caller's own rows and appended events. It is a
/// [`Projection`](crate::sourcing::Projection) for an [`AggregateView`], which
/// [`rebuild`](crate::sourcing::rebuild) and [`catch_up`](crate::sourcing::catch_up) maintain.
///
/// ```
/// use events::sourcing::{EventAt, SqliteViews, View};
/// use events::store::SqliteStore;
///
/// #[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq)]
/// struct Ledger { balance: i64 }
/// impl View for Ledger { const NAME: &'static str = "ledger"; }
///
/// let store = SqliteStore::open_in_memory()?;
/// let ledgers = SqliteViews::<Ledger>::new(&store)?;
/// let first = EventAt { id: "acc-1", sequence: 1 };
/// assert!(ledgers.update(first, |l| l.balance += 10)?);
/// assert!(!ledgers.update(first, |l| l.balance += 10)?, "sequence 1 is already in");
/// assert_eq!(ledgers.load("acc-1")?, Some((Ledger { balance: 10 }, 1)));
/// # Ok::<(), events::store::StoreError>(())
/// ```
pub type SqliteViews<V> = ViewStore<SqliteStore, V>;

impl<V: View> SqliteViews<V> {
    /// A repository of `V` in `store`'s database (its table comes with the store's schema).
    pub fn new(store: &SqliteStore) -> Result<Self, StoreError> {
        Ok(Self::of(store))
    }

    /// The view `id` and its version, if it was ever saved.
    pub fn load(&self, id: &str) -> Result<Option<(V, u64)>, StoreError> {
        load(&*self.store.try_lock()?, id)
    }

    /// Like [`load`](Self::load), inside the caller's transaction.
    pub fn load_in(tx: &Transaction<'_>, id: &str) -> Result<Option<(V, u64)>, StoreError> {
        load(tx, id)
    }

    /// Saves the view `id` at `version`.
    pub fn save(&self, id: &str, view: &V, version: u64) -> Result<(), StoreError> {
        self.store.write(|tx| Self::save_in(tx, id, view, version))
    }

    /// Like [`save`](Self::save), inside the caller's transaction.
    pub fn save_in(
        tx: &Transaction<'_>,
        id: &str,
        view: &V,
        version: u64,
    ) -> Result<(), StoreError> {
        save_view(tx, V::NAME, id, &encode(view)?, version)
    }

    /// Applies the event `at` to the view `at.id` (a new view starts from `V::default()`),
    /// unless the view already holds it. `Ok(false)`: already applied, nothing changed.
    pub fn update(&self, at: EventAt<'_>, change: impl FnOnce(&mut V)) -> Result<bool, StoreError> {
        self.store.write(|tx| Self::update_in(tx, at, change))
    }

    /// Like [`update`](Self::update), inside the caller's transaction.
    pub fn update_in(
        tx: &Transaction<'_>,
        at: EventAt<'_>,
        change: impl FnOnce(&mut V),
    ) -> Result<bool, StoreError> {
        let (mut view, version) = load(tx, at.id)?.unwrap_or_default();
        if already_applied::<V>(at, version) {
            return Ok(false);
        }
        change(&mut view);
        Self::save_in(tx, at.id, &view, at.sequence)?;
        Ok(true)
    }

    /// Deletes every view of this type (before a rebuild).
    pub fn clear(&self) -> Result<(), StoreError> {
        self.store.write(|tx| clear_views(tx, V::NAME).map(drop))
    }
}

impl<V: AggregateView> SqliteViews<V> {
    /// Applies a stored event to the view of its aggregate, at its sequence, both read from
    /// `meta`; `Ok(false)` when the view already holds it. Fails for an event that was not
    /// read from the store (no sequence in its `Meta`). This commits at once: a durable
    /// handler uses a [`ViewKeeper`](crate::sourcing::ViewKeeper) instead, whose write
    /// commits with its checkpoint.
    pub fn update_with(&self, event: &V::Event, meta: &Meta) -> Result<bool, StoreError> {
        self.update(event_at::<V>(meta)?, |view| view.update(event))
    }
}

fn load<V: View>(conn: &Connection, id: &str) -> Result<Option<(V, u64)>, StoreError> {
    load_view(conn, V::NAME, id)?
        .map(|(body, version)| Ok((decode_view::<V>(id, body)?, version)))
        .transpose()
}
