//! Storing published events for their durable handlers: the sink a store backend implements
//! (so the core never imports a store), and the outbox that publishes into the caller's own
//! transaction.

use std::time::SystemTime;

use uuid::Uuid;

use crate::bus::Bus;
use crate::error::BoxError;
use crate::event::DomainEvent;
use crate::meta::Meta;
use crate::report::Report;

/// An event to store for its durable handlers, untyped: what a [`DurableSink`] appends.
#[derive(Clone, Debug, PartialEq)]
pub struct DurableRecord {
    /// The id the inline handlers saw in their [`Meta`].
    pub event_id: Uuid,
    /// The event's stable name.
    pub name: &'static str,
    /// Its schema version.
    pub version: u32,
    /// The stream's aggregate type: the event's, or its name when it declares none.
    pub aggregate_type: &'static str,
    /// The stream's aggregate id (empty when the event has none).
    pub aggregate_id: String,
    /// The payload, serialized by the event's `Serialize`.
    pub payload: serde_json::Value,
    /// The id shared by every event of one chain.
    pub correlation_id: Uuid,
    /// The id of the event or command that caused this one.
    pub causation_id: Option<Uuid>,
    /// When it happened.
    pub occurred_at: SystemTime,
}

impl DurableRecord {
    /// The record of `event` with the metadata its inline handlers see.
    pub(crate) fn of<E: DomainEvent>(
        event: &E,
        meta: &Meta,
        encode: crate::handler::Encode<E>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_id: meta.event_id,
            name: E::NAME,
            version: E::VERSION,
            aggregate_type: E::AGGREGATE_TYPE.unwrap_or(E::NAME),
            aggregate_id: meta.aggregate_id().unwrap_or_default().to_owned(),
            payload: encode(event)?,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            occurred_at: meta.occurred_at,
        })
    }
}

/// Where a bus stores the events that have durable handlers (`Bus::builder().store(..)`).
/// Every store backend implements it; each record goes to the end of its aggregate's stream.
#[async_trait::async_trait]
pub trait DurableSink: Send + Sync + 'static {
    /// Appends one record; returns its position in the log.
    async fn append(&self, record: DurableRecord) -> Result<u64, BoxError>;

    /// Whether [`append_blocking`](Self::append_blocking) works: a sync `publish` stores
    /// through it, and otherwise reports the durable handlers as skipped.
    fn can_append_blocking(&self) -> bool {
        false
    }

    /// Appends one record without an async runtime (for `publish`).
    fn append_blocking(&self, record: DurableRecord) -> Result<u64, BoxError> {
        let _ = record;
        Err("this store cannot append without an async runtime; use `dispatch(..).await`".into())
    }
}

/// The events published inside one of the caller's database transactions: a store backend
/// appends their records in that transaction, and after the commit they are published inline
/// with the same metadata. State change, stored event and inline handlers go together.
///
/// Made by the backend's transaction call (for SQLite: `SqliteStore::outbox`).
pub struct Outbox<'b> {
    bus: &'b Bus,
    pending: Vec<Pending>,
}

struct Pending {
    meta: Meta,
    record: Option<Result<DurableRecord, (&'static str, serde_json::Error)>>,
    event: Box<dyn Outgoing>,
}

/// A published event waiting for the commit.
trait Outgoing: Send {
    fn publish(&self, bus: &Bus, meta: Meta) -> Report;
}

struct Owned<E>(E);

impl<E: DomainEvent> Outgoing for Owned<E> {
    fn publish(&self, bus: &Bus, meta: Meta) -> Report {
        bus.publish_committed(&self.0, meta)
    }
}

impl<'b> Outbox<'b> {
    /// An empty outbox publishing on `bus`.
    pub fn new(bus: &'b Bus) -> Self {
        Self {
            bus,
            pending: Vec::new(),
        }
    }

    /// Publishes `event` in the transaction: it is stored now (if it has durable handlers) and
    /// its inline handlers run after the commit.
    pub fn publish<E: DomainEvent>(&mut self, event: E) {
        let meta = Meta::of(&event);
        let record = self
            .bus
            .durable_encoder::<E>()
            .map(|encode| DurableRecord::of(&event, &meta, encode).map_err(|e| (E::NAME, e)));
        self.pending.push(Pending {
            meta,
            record,
            event: Box::new(Owned(event)),
        });
    }

    /// The records to append in the transaction, in publishing order; the first event that
    /// cannot be serialized fails the transaction (its name and the serde error).
    pub fn records(&self) -> Result<Vec<DurableRecord>, (&'static str, &serde_json::Error)> {
        self.pending
            .iter()
            .filter_map(|p| p.record.as_ref())
            .map(|r| r.as_ref().cloned().map_err(|(name, e)| (*name, e)))
            .collect()
    }

    /// After the commit: publishes every event inline (sync handlers) with the metadata it was
    /// stored with, and returns their reports.
    pub fn publish_committed(self) -> Vec<Report> {
        let bus = self.bus;
        self.pending
            .into_iter()
            .map(|p| p.event.publish(bus, p.meta))
            .collect()
    }
}
