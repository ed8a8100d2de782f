//! Views (read models) persisted by id: a serde value per id, with the version it was built up
//! to, in one table (`events_views`) shared by every view type. [`ViewRepository`] keeps them
//! on any backend (what `store::connect(url)` returned), async; `SqliteViews` (sync) and
//! `PostgresViews` (feature `postgres`) are the backends' own, with the same operations.
//!
//! A view fed by one aggregate's events keeps, as its version, the sequence of the last event
//! it applied: `update` skips an event it already holds, so a replay changes nothing. On the
//! backends' own types every operation also exists in a `_in` form that takes the caller's
//! transaction, so a view can change together with the caller's own rows and appended events.
//!
//! A durable handler keeps views live through a [`ViewKeeper`]: its writes are staged and
//! committed by the worker in the same transaction as the handler's checkpoint, so a crash
//! between the two cannot apply an event twice, whatever the view (one fed by many aggregates
//! too), and two workers updating one view cannot lose an update. `#[derive(View)]` with
//! `#[view(durable = "handler.name")]` generates that handler for an [`AggregateView`].
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

#[cfg(feature = "durable")]
mod keeper;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "durable")]
mod repository;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "durable")]
pub use keeper::{view_registration, KeptView, ViewHandler, ViewKeeper};
#[cfg(feature = "durable")]
pub(crate) use keeper::{Staged, Staging};

use std::marker::PhantomData;

#[cfg(feature = "postgres")]
pub use postgres::PostgresViews;
#[cfg(feature = "durable")]
pub use repository::ViewRepository;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteViews;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::meta::Meta;
use crate::sourcing::set::EventSet;
use crate::store::StoreError;

/// A read model stored per id. `NAME` keys its rows; keep it stable.
///
/// `#[derive(View)]` implements it (`#[view(name = "..")]`, default: the type's name) and,
/// with `#[view(durable = "handler.name")]`, also registers a durable handler of that name
/// that keeps the view of each event's aggregate through a [`ViewKeeper`] (the type must
/// implement [`AggregateView`]):
///
/// ```
/// use events::sourcing::{AggregateView, View};
/// use events::{DomainEvent, EventSet};
///
/// #[derive(DomainEvent, EventSet, serde::Serialize, serde::Deserialize)]
/// enum AccountEvent {
///     Opened { id: String },
///     Deposited { cents: i64 },
/// }
///
/// #[derive(View, serde::Serialize, serde::Deserialize, Default)]
/// #[view(name = "balance", durable = "bank.balance")]
/// struct Balance { cents: i64 }
///
/// impl AggregateView for Balance {
///     type Event = AccountEvent;
///     fn update(&mut self, event: &AccountEvent) {
///         if let AccountEvent::Deposited { cents } = event {
///             self.cents += cents;
///         }
///     }
/// }
///
/// assert_eq!(Balance::NAME, "balance");
/// assert!(events::catalog().handlers().iter().any(|h| h.name() == "bank.balance"));
/// ```
pub trait View: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The view's stable name.
    const NAME: &'static str;
}

/// A view of one aggregate instance, fed by its events (cqrs-es's `View`): its sync SQLite
/// repository (`SqliteViews`) is then a [`Projection`](crate::sourcing::Projection) that keeps one view per
/// aggregate id, at the sequence of the last event it applied, so
/// [`rebuild`](crate::sourcing::rebuild) and [`catch_up`](crate::sourcing::catch_up) maintain
/// it; a durable handler keeps it live with `update_with` (`#[view(durable = "..")]` writes
/// that handler).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an `AggregateView`",
    label = "needs a view fed by one aggregate's events",
    note = "implement `events::sourcing::AggregateView` for `{Self}` (its `Event` set and `update`): `#[view(durable = \"..\")]`, `update_with` and a view repository as a projection apply each event to the view of its aggregate"
)]
pub trait AggregateView: View {
    /// The events it reads.
    type Event: EventSet;
    /// Applies one event of its aggregate.
    fn update(&mut self, event: &Self::Event);
}

/// Views of type `V` by id, with their version, in the database of the store `S`: the one type
/// behind every view repository, [`ViewRepository`] (`S` is `Arc<dyn DurableStore>`: any
/// backend, async), `SqliteViews` (`S` is `SqliteStore`: sync, with `_in` forms) and
/// `PostgresViews` (`S` is `PostgresStore`: async, with `_in` forms).
pub struct ViewStore<S, V> {
    store: S,
    _view: PhantomData<fn() -> V>,
}

// Written out: a derived `Clone` would ask for `V: Clone`, which a view type need not be.
impl<S: Clone, V> Clone for ViewStore<S, V> {
    fn clone(&self) -> Self {
        Self::of(&self.store)
    }
}

impl<S: Clone, V> ViewStore<S, V> {
    /// The repository of `V` in `store`'s database.
    fn of(store: &S) -> Self {
        Self {
            store: store.clone(),
            _view: PhantomData,
        }
    }
}

/// Where an event stands in its aggregate's stream: the aggregate's id, which is the id of its
/// view, and the event's sequence, which is the view's version once it holds the event. What
/// `update` applies an event at; `update_with` reads it from the event's `Meta`, and a stored
/// event gives its own (`EventAt::from(&stored)`). The two always go together, and named they
/// say which number is the sequence.
///
/// ```
/// use events::sourcing::EventAt;
/// let at = EventAt { id: "acc-1", sequence: 3 };
/// assert_eq!((at.id, at.sequence), ("acc-1", 3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventAt<'a> {
    /// The aggregate's id: the id of its view.
    pub id: &'a str,
    /// The event's sequence in the aggregate's stream.
    pub sequence: u64,
}

impl<'a> From<&'a crate::store::StoredEvent> for EventAt<'a> {
    fn from(stored: &'a crate::store::StoredEvent) -> Self {
        Self {
            id: &stored.aggregate_id,
            sequence: stored.sequence,
        }
    }
}

/// The view's stored body.
fn encode<V: View>(view: &V) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(view).map_err(|source| StoreError::Encode {
        name: V::NAME.to_owned(),
        source,
    })
}

/// The view from its stored body.
fn decode_view<V: View>(id: &str, body: serde_json::Value) -> Result<V, StoreError> {
    crate::decode::from_value(&body).map_err(|source| StoreError::Decode {
        position: 0,
        name: format!("view `{}` of `{id}`", V::NAME),
        source,
    })
}

/// Whether the view at `version` holds the event `at` already (logged).
fn already_applied<V: View>(at: EventAt<'_>, version: u64) -> bool {
    if at.sequence > version {
        return false;
    }
    tracing::debug!(
        view = V::NAME,
        id = at.id,
        sequence = at.sequence,
        version,
        "event already in the view, skipped"
    );
    true
}

/// Where a stored event a handler received stands in its aggregate's stream.
fn event_at<V: View>(meta: &Meta) -> Result<EventAt<'_>, StoreError> {
    match (meta.aggregate_id(), meta.sequence()) {
        (Some(id), Some(sequence)) => Ok(EventAt { id, sequence }),
        _ => Err(StoreError::Refused(format!(
            "view `{}` is kept from stored events, and `{}` was not read from the store (no aggregate id or sequence): update it from a durable handler",
            V::NAME,
            meta.event_name()
        ))),
    }
}
