//! Views (read models) persisted on SQLite: a serde value per id, with the version it was
//! built up to, in one table the repository creates.
//!
//! A view fed by one aggregate's events keeps, as its version, the sequence of the last event
//! it applied: [`ViewRepository::update`] skips an event it already holds, so a redelivery or
//! a replay changes nothing. Every operation also exists in a `_in` form that takes the
//! caller's transaction ([`SqliteStore::transaction`]), so a view can change together with
//! the caller's own rows and appended events.
//!
//! A durable handler keeps a view live with [`ViewRepository::update_with`]: the view write
//! and the handler's checkpoint are two commits, and a crash between them delivers the event
//! again after the restart, which the view then skips (it holds the event's sequence already),
//! so the view never applies an event twice. This holds for a view per aggregate, whose events
//! one handler receives in sequence order (hold-back keeps that order through retries).

use std::marker::PhantomData;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::BoxError;
use crate::meta::Meta;
use crate::sourcing::projection::Projection;
use crate::sourcing::set::EventSet;
use crate::store::sqlite::backend;
use crate::store::{SqliteStore, StoreError, StoredEvent};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events_views (
    view    TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT    NOT NULL,
    PRIMARY KEY (view, id)
);";

/// A read model stored per id. `NAME` keys its rows; keep it stable.
pub trait View: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The view's stable name.
    const NAME: &'static str;
}

/// A view of one aggregate instance, fed by its events (cqrs-es's `View`): its repository is
/// then a [`Projection`] that keeps one view per aggregate id, at the sequence of the last
/// event it applied, so [`rebuild`](crate::sourcing::rebuild) and
/// [`catch_up`](crate::sourcing::catch_up) maintain it.
pub trait AggregateView: View {
    /// The events it reads.
    type Event: EventSet;
    /// Applies one event of its aggregate.
    fn update(&mut self, event: &Self::Event);
}

impl<V: AggregateView> Projection for ViewRepository<V> {
    type Event = V::Event;

    fn reset(&self) -> Result<(), BoxError> {
        Ok(self.clear()?)
    }

    fn apply(&self, event: &V::Event, stored: &StoredEvent) -> Result<(), BoxError> {
        self.update(&stored.aggregate_id, stored.sequence, |view| {
            view.update(event)
        })?;
        Ok(())
    }
}

/// Loads and saves views of type `V` by id, with their version.
///
/// ```
/// use events::sourcing::{View, ViewRepository};
/// use events::store::SqliteStore;
///
/// #[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq)]
/// struct Ledger { balance: i64 }
/// impl View for Ledger { const NAME: &'static str = "ledger"; }
///
/// let store = SqliteStore::open_in_memory()?;
/// let ledgers = ViewRepository::<Ledger>::new(&store)?;
/// assert!(ledgers.update("acc-1", 1, |l| l.balance += 10)?);
/// assert!(!ledgers.update("acc-1", 1, |l| l.balance += 10)?, "sequence 1 is already in");
/// assert_eq!(ledgers.load("acc-1")?, Some((Ledger { balance: 10 }, 1)));
/// # Ok::<(), events::store::StoreError>(())
/// ```
pub struct ViewRepository<V> {
    store: SqliteStore,
    _view: PhantomData<fn() -> V>,
}

impl<V> Clone for ViewRepository<V> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            _view: PhantomData,
        }
    }
}

impl<V: View> ViewRepository<V> {
    /// A repository of `V` in `store`'s database, creating its table if needed.
    pub fn new(store: &SqliteStore) -> Result<Self, StoreError> {
        store.write(|tx| tx.execute_batch(SCHEMA).map_err(backend))?;
        Ok(Self {
            store: store.clone(),
            _view: PhantomData,
        })
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
        let body = serde_json::to_string(view).map_err(|source| StoreError::Encode {
            name: V::NAME.to_owned(),
            source,
        })?;
        tx.execute(
            "INSERT INTO events_views (view, id, version, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (view, id) DO UPDATE SET version = excluded.version, body = excluded.body",
            params![V::NAME, id, version as i64, body],
        )
        .map_err(backend)?;
        Ok(())
    }

    /// Applies the event of aggregate sequence `sequence` to the view `id` (a new view starts
    /// from `V::default()`), unless the view already holds it. `Ok(false)`: already applied,
    /// nothing changed.
    pub fn update(
        &self,
        id: &str,
        sequence: u64,
        change: impl FnOnce(&mut V),
    ) -> Result<bool, StoreError> {
        self.store
            .write(|tx| Self::update_in(tx, id, sequence, change))
    }

    /// Like [`update`](Self::update), inside the caller's transaction.
    pub fn update_in(
        tx: &Transaction<'_>,
        id: &str,
        sequence: u64,
        change: impl FnOnce(&mut V),
    ) -> Result<bool, StoreError> {
        let (mut view, version) = load(tx, id)?.unwrap_or_default();
        if sequence <= version {
            tracing::debug!(
                view = V::NAME,
                id,
                sequence,
                version,
                "event already in the view, skipped"
            );
            return Ok(false);
        }
        change(&mut view);
        Self::save_in(tx, id, &view, sequence)?;
        Ok(true)
    }

    /// Deletes every view of this type (before a rebuild).
    pub fn clear(&self) -> Result<(), StoreError> {
        self.store.write(|tx| {
            tx.execute("DELETE FROM events_views WHERE view = ?1", [V::NAME])
                .map(drop)
                .map_err(backend)
        })
    }
}

impl<V: AggregateView> ViewRepository<V> {
    /// Applies an event a handler received (a durable handler: see the module's doc) to the
    /// view of its aggregate, at its sequence, both read from `meta`; `Ok(false)` when the
    /// view already holds it. Fails for an event that was not read from the store (no
    /// sequence in its `Meta`).
    pub fn update_with(&self, event: &V::Event, meta: &Meta) -> Result<bool, StoreError> {
        let (Some(id), Some(sequence)) = (meta.aggregate_id(), meta.sequence()) else {
            return Err(StoreError::Refused(format!(
                "view `{}` is kept from stored events, and `{}` was not read from the store (no aggregate id or sequence): update it from a durable handler",
                V::NAME,
                meta.event_name()
            )));
        };
        self.update(id, sequence, |view| view.update(event))
    }
}

fn load<V: View>(conn: &Connection, id: &str) -> Result<Option<(V, u64)>, StoreError> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT body, version FROM events_views WHERE view = ?1 AND id = ?2",
            params![V::NAME, id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    row.map(|(body, version)| {
        serde_json::from_str(&body)
            .map(|view| (view, version as u64))
            .map_err(|source| StoreError::Decode {
                position: 0,
                name: format!("view `{}` of `{id}`", V::NAME),
                source,
            })
    })
    .transpose()
}
