//! Views (read models) persisted by id: a serde value per id, with the version it was built up
//! to, in one table (`events_views`) shared by every view type. [`ViewRepository`] keeps them
//! on SQLite, `PostgresViewRepository` (feature `postgres`) on PostgreSQL, with the same
//! operations (async on PostgreSQL).
//!
//! A view fed by one aggregate's events keeps, as its version, the sequence of the last event
//! it applied: `update` skips an event it already holds, so a redelivery or a replay changes
//! nothing. Every operation also exists in a `_in` form that takes the caller's transaction,
//! so a view can change together with the caller's own rows and appended events.
//!
//! A durable handler keeps a view live with `update_with(event, &meta)`: the view write and
//! the handler's checkpoint are two commits, and a crash between them delivers the event again
//! after the restart, which the view then skips (it holds the event's sequence already, and
//! says so in a debug log line), so no event is applied twice. This holds for a view per
//! aggregate, whose events one handler receives in sequence order (hold-back keeps that order
//! through retries and dead letters).
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresViewRepository;
#[cfg(feature = "sqlite")]
pub use sqlite::ViewRepository;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::meta::Meta;
use crate::sourcing::set::EventSet;
use crate::store::StoreError;

/// A read model stored per id. `NAME` keys its rows; keep it stable.
pub trait View: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The view's stable name.
    const NAME: &'static str;
}

/// A view of one aggregate instance, fed by its events (cqrs-es's `View`): its SQLite
/// repository is then a [`Projection`](crate::sourcing::Projection) that keeps one view per
/// aggregate id, at the sequence of the last event it applied, so
/// [`rebuild`](crate::sourcing::rebuild) and [`catch_up`](crate::sourcing::catch_up) maintain
/// it; a durable handler keeps it live with `update_with`.
pub trait AggregateView: View {
    /// The events it reads.
    type Event: EventSet;
    /// Applies one event of its aggregate.
    fn update(&mut self, event: &Self::Event);
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
    crate::decode::from_value(&body).map_err(|e| decode::<V>(id, e))
}

fn decode<V: View>(id: &str, source: serde_json::Error) -> StoreError {
    StoreError::Decode {
        position: 0,
        name: format!("view `{}` of `{id}`", V::NAME),
        source,
    }
}

/// Whether the view `id` at `version` holds the event of `sequence` already (logged).
fn already_applied<V: View>(id: &str, sequence: u64, version: u64) -> bool {
    if sequence > version {
        return false;
    }
    tracing::debug!(
        view = V::NAME,
        id,
        sequence,
        version,
        "event already in the view, skipped"
    );
    true
}

/// The aggregate id and sequence of a stored event a handler received.
fn sequence_of<V: View>(meta: &Meta) -> Result<(&str, u64), StoreError> {
    match (meta.aggregate_id(), meta.sequence()) {
        (Some(id), Some(sequence)) => Ok((id, sequence)),
        _ => Err(StoreError::Refused(format!(
            "view `{}` is kept from stored events, and `{}` was not read from the store (no aggregate id or sequence): update it from a durable handler",
            V::NAME,
            meta.event_name()
        ))),
    }
}
