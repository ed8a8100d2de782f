//! The event store: an append-only log with a global position, optimistic concurrency per
//! aggregate stream, and JSON payloads.
//!
//! [`EventStore`] is the trait every backend implements; [`MemoryStore`] is the in-memory one
//! (tests, examples, prototypes). Its methods return `Send` futures, so a database backend can
//! implement them with `async fn`.

#[cfg(feature = "durable")]
mod connect;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub mod durable;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_outbox;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::BoxError;
use crate::event::DomainEvent;
use crate::meta::Meta;

#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub use connect::{connect, connect_existing};
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub use durable::{
    AppendAt, DurableStore, FiredTimer, IntoDurableStore, LogQuery, Timer, TimerCounts, ViewWrite,
};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresStore;
/// The SQLite driver [`SqliteStore::transaction`] hands a `rusqlite::Transaction` of: use this
/// re-export, so your code and the store agree on its version.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use rusqlite;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

/// Correlation and causation of a stored event, plus free-form user fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The id shared by every event of one chain (a request, a command and what followed).
    pub correlation_id: Option<Uuid>,
    /// The id of the command or event that caused this one.
    pub causation_id: Option<Uuid>,
    /// Free-form fields (user id, tenant, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl EventMetadata {
    /// Metadata of events caused by the command or event described by `cause`, with its
    /// free-form fields.
    pub fn caused_by(cause: &Meta) -> Self {
        Self {
            correlation_id: Some(cause.correlation_id()),
            causation_id: Some(cause.event_id()),
            fields: cause.fields.as_deref().cloned().unwrap_or_default(),
        }
    }

    /// Adds a user field.
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }
}

/// An event about to be appended: everything but its position and sequence, which the store
/// assigns.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Unique id (UUID v7).
    pub event_id: Uuid,
    /// The event's stable name ([`DomainEvent::NAME`]).
    pub name: String,
    /// Schema version of the payload.
    pub version: u32,
    /// The payload, serialized with serde.
    pub payload: serde_json::Value,
    /// Correlation, causation, user fields.
    pub metadata: EventMetadata,
    /// When it happened.
    pub occurred_at: SystemTime,
}

impl NewEvent {
    /// A bus's record as the event to append (its stream: `record.aggregate_type` /
    /// `record.aggregate_id`); the bus's correlation and causation go to the metadata.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn from_record(record: crate::sink::DurableRecord) -> Self {
        Self {
            event_id: record.event_id,
            name: record.name.to_owned(),
            version: record.version,
            payload: record.payload,
            metadata: EventMetadata {
                correlation_id: Some(record.correlation_id),
                causation_id: record.causation_id,
                ..EventMetadata::default()
            },
            occurred_at: record.occurred_at,
        }
    }

    /// Serializes a typed event with a fresh id and the current time.
    pub fn new<E: DomainEvent + Serialize>(
        event: &E,
        metadata: EventMetadata,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            event_id: Uuid::now_v7(),
            name: E::NAME.to_owned(),
            version: E::VERSION,
            payload: serde_json::to_value(event).map_err(|e| StoreError::Encode {
                name: E::NAME.to_owned(),
                source: e,
            })?,
            metadata,
            occurred_at: SystemTime::now(),
        })
    }

    /// The event as stored at `position` in the log, the `sequence`th of `stream`: what every
    /// backend returns from an append.
    pub(crate) fn stored(self, stream: StreamId<'_>, position: u64, sequence: u64) -> StoredEvent {
        StoredEvent {
            position,
            event_id: self.event_id,
            name: self.name,
            version: self.version,
            aggregate_type: stream.aggregate_type.to_owned(),
            aggregate_id: stream.aggregate_id.to_owned(),
            sequence,
            payload: self.payload,
            metadata: self.metadata,
            occurred_at: self.occurred_at,
        }
    }
}

/// The records of the events published in `outbox`, to append in its transaction; one whose
/// payload does not serialize fails the transaction.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn outbox_records(
    outbox: &crate::outbox::Outbox<'_>,
) -> Result<Vec<crate::sink::DurableRecord>, StoreError> {
    outbox.records().map_err(|(name, e)| {
        StoreError::Backend(format!("cannot serialize event `{name}` for the store: {e}").into())
    })
}

/// An event as stored: with its global position and its sequence in its aggregate's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Position in the whole log, from 1, without gaps.
    pub position: u64,
    /// Unique id (UUID v7).
    pub event_id: Uuid,
    /// The event's stable name.
    pub name: String,
    /// Schema version of the payload.
    pub version: u32,
    /// The aggregate type of the stream.
    pub aggregate_type: String,
    /// The aggregate id of the stream.
    pub aggregate_id: String,
    /// Position in the aggregate's stream, from 1, without gaps: the aggregate's version after
    /// this event.
    pub sequence: u64,
    /// The payload.
    pub payload: serde_json::Value,
    /// Correlation, causation, user fields.
    pub metadata: EventMetadata,
    /// When it happened.
    pub occurred_at: SystemTime,
}

impl StoredEvent {
    /// The envelope handlers see for this event, typed as `E`: its stored id and time, its
    /// correlation and causation, its aggregate, sequence and position.
    pub fn meta<E: DomainEvent>(&self) -> Meta {
        self.envelope(E::NAME, E::VERSION)
    }

    /// The envelope of this event, for the event type of that name and (current) version (an
    /// event set's variant).
    pub(crate) fn envelope(&self, event_name: &'static str, version: u32) -> Meta {
        Meta {
            event_id: self.event_id,
            occurred_at: self.occurred_at,
            correlation_id: self.metadata.correlation_id.unwrap_or(self.event_id),
            causation_id: self.metadata.causation_id,
            event_name,
            version,
            aggregate_type: Some(self.aggregate_type.as_str().into()),
            aggregate_id: Some(self.aggregate_id.as_str().into()),
            sequence: Some(self.sequence),
            position: Some(self.position),
            stored_version: Some(self.version),
            fields: (!self.metadata.fields.is_empty())
                .then(|| std::sync::Arc::new(self.metadata.fields.clone())),
        }
    }

    /// The payload brought to the current version of its event type by the event's upcaster
    /// (the same step every read path takes: aggregates, projections, replays, the worker).
    pub fn current_payload(&self) -> Result<serde_json::Value, StoreError> {
        match crate::catalog::catalog().event(&self.name) {
            Some(info) => info
                .upcast(self.version, self.payload.clone())
                .map_err(|e| StoreError::Upcast {
                    position: self.position,
                    name: self.name.clone(),
                    reason: e.to_string(),
                }),
            None => Ok(self.payload.clone()),
        }
    }
}

/// The saved state of one aggregate instance, so loading it replays only the events after
/// `sequence`. Written and read by the event-sourcing layer; the store keeps one per stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSnapshot {
    /// The aggregate's snapshot schema version: a snapshot of another version is ignored.
    pub version: u32,
    /// The stream's sequence the state includes.
    pub sequence: u64,
    /// The state, serialized with serde.
    pub state: serde_json::Value,
}

/// A stream: one aggregate instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId<'a> {
    /// The aggregate type, like `"Account"`.
    pub aggregate_type: &'a str,
    /// The aggregate id.
    pub aggregate_id: &'a str,
}

impl<'a> StreamId<'a> {
    /// The stream at `version`: where an append that expects it there goes
    /// ([`EventStore::append`]).
    pub fn at(self, version: u64) -> StreamVersion<'a> {
        StreamVersion {
            stream: self,
            version,
        }
    }
}

/// A stream at the version a writer last saw: the target of an append with optimistic
/// concurrency. The stream and its expected version always travel together, from the
/// aggregate that was loaded to the check the store makes, so they are one value
/// ([`StreamId::at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamVersion<'a> {
    /// The stream.
    pub stream: StreamId<'a>,
    /// The version the stream must be at (0: a new stream).
    pub version: u64,
}

impl StreamVersion<'_> {
    /// Fails with [`StoreError::Conflict`] unless the stream is still at this version (it is
    /// at `actual`): the check every backend makes before it appends.
    pub(crate) fn check(self, actual: u64) -> Result<(), StoreError> {
        if actual == self.version {
            return Ok(());
        }
        Err(StoreError::Conflict {
            aggregate_type: self.stream.aggregate_type.to_owned(),
            aggregate_id: self.stream.aggregate_id.to_owned(),
            expected: self.version,
            actual,
        })
    }
}

/// What can go wrong with a store.
///
/// Its `Debug` is its message too, so `fn main() -> Result<(), StoreError>` and `.expect(..)`
/// print it readably.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Someone else appended to the stream since it was read; nothing was written. Load the
    /// aggregate again and retry the command.
    #[error("concurrent append to {aggregate_type} `{aggregate_id}`: expected version {expected}, the stream is at {actual}; nothing was written, reload and retry")]
    Conflict {
        /// The stream's aggregate type.
        aggregate_type: String,
        /// The stream's aggregate id.
        aggregate_id: String,
        /// The version the writer expected.
        expected: u64,
        /// The stream's actual version.
        actual: u64,
    },
    /// An event could not be serialized.
    #[error("cannot serialize event `{name}`: {source}")]
    Encode {
        /// The event's name.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A stored payload does not fit its event type (an upcaster may be missing).
    #[error("cannot decode event `{name}` at position {position}: {source}")]
    Decode {
        /// The event's global position.
        position: u64,
        /// The event's name.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A stored payload of an older schema version could not be upcast.
    #[error("cannot upcast event `{name}` at position {position}: {reason}")]
    Upcast {
        /// The event's global position.
        position: u64,
        /// The event's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The store was used from inside its own transaction, on the thread that holds it: it
    /// would have waited for itself forever.
    #[error("the store was used inside its own `transaction` (it would wait for itself forever): inside the closure, use the `tx` it was given (`SqliteStore::append_in(tx, ..)`, `SqliteStore::head_in(tx)`, `SqliteViews::save_in(tx, ..)`)")]
    Reentered,
    /// The backend failed (I/O, database).
    #[error("event store backend failed: {0}")]
    Backend(BoxError),
    /// The store could not be opened.
    #[error("cannot open the event store {}: {reason}", .path.display())]
    Open {
        /// The file (or URL) given.
        path: std::path::PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A worker's claim on a handler passed to another worker (its lease lapsed): nothing was
    /// written; the event in hand may be delivered again by the new holder.
    #[error("lost the lease on handler `{handler}` (segment {segment}) to another worker; nothing was written")]
    LeaseLost {
        /// The handler.
        handler: String,
        /// The segment.
        segment: u32,
    },
    /// A view write staged by a durable handler found the view at another version than the
    /// one it was built on (another worker changed it meanwhile): the whole settlement was
    /// rolled back, and the worker delivers the event again on the view as it is now.
    #[error("view `{view}` of `{id}` changed since it was read (expected version {expected:?}); nothing was written, the event is delivered again")]
    ViewConflict {
        /// The view's name.
        view: String,
        /// The view's id.
        id: String,
        /// The version the write was built on (`None`: the view did not exist).
        expected: Option<u64>,
    },
    /// A position beyond the end of the log was asked for.
    #[error("position {position} is past the log head ({head}); give a position up to {head}")]
    PastHead {
        /// The position asked for.
        position: u64,
        /// The last position in the log.
        head: u64,
    },
    /// An operator request the store refused, with the reason and what to do.
    #[error("{0}")]
    Refused(String),
}

impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// An append-only event log. Backends: [`MemoryStore`] here; durable ones implement the same
/// trait.
///
/// ```
/// use events::store::{EventStore, EventMetadata, MemoryStore, NewEvent, StreamId, StoreError};
/// # #[derive(events::DomainEvent, serde::Serialize)] struct Opened { owner: String }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let stream = StreamId { aggregate_type: "Account", aggregate_id: "a-1" };
/// let e = NewEvent::new(&Opened { owner: "Ada".into() }, EventMetadata::default())?;
/// store.append(stream.at(0), vec![e.clone()]).await?;
/// // A writer that still believes the stream is empty loses:
/// let err = store.append(stream.at(0), vec![e]).await.unwrap_err();
/// assert!(matches!(err, StoreError::Conflict { expected: 0, actual: 1, .. }));
/// assert_eq!(store.read_stream(stream).await?.len(), 1);
/// # Ok::<(), StoreError>(()) }).unwrap();
/// ```
pub trait EventStore: Send + Sync {
    /// Appends `events` to `at.stream`, whose current version must be `at.version` (0 for a
    /// new stream). On a mismatch, fails with [`StoreError::Conflict`] and writes nothing.
    /// Returns the stored events, with their positions and sequences.
    fn append(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Every event of one stream, in sequence order.
    fn read_stream(
        &self,
        stream: StreamId<'_>,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Up to `limit` events of the whole log with a position greater than `after`, in position
    /// order. `read_all(0, ..)` starts at the beginning.
    fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// The events of one stream with a sequence greater than `after`, in order (the default
    /// reads the whole stream and drops the first ones).
    fn read_stream_after(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send {
        async move {
            let mut events = self.read_stream(stream).await?;
            events.retain(|e| e.sequence > after);
            Ok(events)
        }
    }

    /// The stream's snapshot, if the store keeps one (the default keeps none).
    fn load_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> impl Future<Output = Result<Option<StoredSnapshot>, StoreError>> + Send {
        let _ = stream;
        async { Ok(None) }
    }

    /// Replaces the stream's snapshot; `Ok(false)` when the store keeps no snapshots (the
    /// default).
    fn save_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = (stream, snapshot);
        async { Ok(false) }
    }
}
