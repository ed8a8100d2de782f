//! Storing published events for their durable handlers: the sink a store backend implements
//! (so the core never imports a store), and the outbox that publishes into the caller's own
//! transaction.

use std::time::SystemTime;

use uuid::Uuid;

use crate::bus::Bus;
use crate::error::{BoxError, NotPublished, PublishError};
use crate::event::DomainEvent;
use crate::handler::BoxFuture;
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

/// A view write, untyped: staged by a durable handler (through a `sourcing::ViewKeeper`) or
/// into an [`Outbox`] (`sourcing::ViewRepository::stage`). The backend writes it in the same
/// transaction as the checkpoint or the outbox's events, so they commit or roll back together.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewWrite {
    /// The view's name (`View::NAME`).
    pub view: &'static str,
    /// The view's id.
    pub id: String,
    /// The view's new body.
    pub body: serde_json::Value,
    /// The version the view was at when it was read (`None`: it did not exist). The write
    /// happens only if the stored view is still there; otherwise the transaction fails with
    /// a view conflict and writes nothing.
    pub expected: Option<u64>,
    /// The version it is saved at.
    pub version: u64,
}

/// Where a bus stores the events that have durable handlers (`Bus::builder().store(..)`).
/// Every store backend implements it, and so does the handle `events::store::connect(url)`
/// returns; each record goes to the end of its aggregate's stream.
#[async_trait::async_trait]
pub trait DurableSink: Send + Sync + 'static {
    /// Appends the records, in order, and writes the views, in one transaction: all of it or
    /// none (a view no longer at its expected version fails it). Returns the records'
    /// positions in the log, in the same order.
    async fn commit(
        &self,
        records: Vec<DurableRecord>,
        views: Vec<ViewWrite>,
    ) -> Result<Vec<u64>, BoxError>;
}

/// The events published inside one transaction: a store backend appends their records in
/// it, and after the commit every inline handler (sync and async) runs with the metadata the
/// event was stored with. State change, stored events and inline handlers go together.
///
/// Made by the store's `outbox` call (`events::store::connect(url)` gives every backend's);
/// it takes single events ([`publish`](Self::publish)) and an aggregate's recorded batch
/// (`publish_batch`).
pub struct Outbox<'b> {
    bus: &'b Bus,
    pending: Vec<Pending<'b>>,
    views: Vec<ViewWrite>,
}

struct Pending<'b> {
    meta: Meta,
    record: Option<Result<DurableRecord, (&'static str, serde_json::Error)>>,
    event: Box<dyn Outgoing + 'b>,
}

/// A published event waiting for the commit.
trait Outgoing: Send {
    fn dispatch<'a>(&'a self, bus: &'a Bus, meta: Meta) -> BoxFuture<'a, Report>;
}

struct Owned<E>(E);

impl<E: DomainEvent> Outgoing for Owned<E> {
    fn dispatch<'a>(&'a self, bus: &'a Bus, meta: Meta) -> BoxFuture<'a, Report> {
        Box::pin(bus.dispatch_stored(&self.0, meta))
    }
}

struct Borrowed<'e, E>(&'e E);

impl<E: DomainEvent> Outgoing for Borrowed<'_, E> {
    fn dispatch<'a>(&'a self, bus: &'a Bus, meta: Meta) -> BoxFuture<'a, Report> {
        Box::pin(bus.dispatch_stored(self.0, meta))
    }
}

impl<'b> Outbox<'b> {
    /// An empty outbox publishing on `bus`.
    pub fn new(bus: &'b Bus) -> Self {
        Self {
            bus,
            pending: Vec::new(),
            views: Vec::new(),
        }
    }

    /// Publishes `event` in the transaction: it is stored (if it has durable handlers) with
    /// the transaction, and its inline handlers run after the commit.
    pub fn publish<E: DomainEvent>(&mut self, event: E) {
        self.push::<E, E>(event, |e| Box::new(Owned(e)));
    }

    /// Publishes a borrowed event (an aggregate's batch dispatched by reference).
    pub(crate) fn publish_ref<E: DomainEvent>(&mut self, event: &'b E) {
        self.push::<E, &E>(event, |e| Box::new(Borrowed(e)));
    }

    fn push<E: DomainEvent, T: std::borrow::Borrow<E>>(
        &mut self,
        event: T,
        boxed: impl FnOnce(T) -> Box<dyn Outgoing + 'b>,
    ) {
        let meta = Meta::of(event.borrow());
        let record = self.bus.durable_encoder::<E>().map(|encode| {
            DurableRecord::of(event.borrow(), &meta, encode).map_err(|e| (E::NAME, e))
        });
        self.pending.push(Pending {
            meta,
            record,
            event: boxed(event),
        });
    }

    /// Stages a view write in the transaction (typed: `sourcing::ViewRepository::stage`).
    pub fn write_view(&mut self, write: ViewWrite) {
        self.views.push(write);
    }

    /// The view writes staged so far, to make in the transaction.
    pub fn views(&self) -> &[ViewWrite] {
        &self.views
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

    /// The records were appended at `positions` (in [`records`](Self::records) order): their
    /// inline handlers will see them in [`Meta::position`].
    pub(crate) fn stored(&mut self, positions: &[u64]) {
        let with_records = self.pending.iter_mut().filter(|p| p.record.is_some());
        for (pending, &position) in with_records.zip(positions) {
            pending.meta.position = Some(position);
        }
    }

    /// Appends the records to `sink` (`None`: the bus's store) and writes the views in one
    /// transaction, then runs every inline handler: an outbox without a transaction of the
    /// caller's (a batch dispatched on the bus, or a store's neutral `outbox` call).
    pub(crate) async fn commit(
        mut self,
        sink: Option<&dyn DurableSink>,
    ) -> Result<Vec<Report>, PublishError> {
        let records = self.records().map_err(|(event, e)| {
            crate::bus::refused(NotPublished::NotStored {
                event,
                source: format!("cannot serialize it: {e}").into(),
            })
        })?;
        if !records.is_empty() || !self.views.is_empty() {
            let first = records.first().map_or("(outbox views)", |r| r.name);
            let views = std::mem::take(&mut self.views);
            let Some(sink) = sink.or_else(|| self.bus.sink()) else {
                return Err(crate::bus::refused(NotPublished::NoStore {
                    event: first,
                    handlers: Vec::new(),
                }));
            };
            let committed = sink.commit(records, views).await;
            let positions = committed.map_err(|source| {
                crate::bus::refused(NotPublished::NotStored {
                    event: first,
                    source,
                })
            })?;
            self.stored(&positions);
        }
        Ok(self.dispatch_committed().await)
    }

    /// After the commit: runs every event's inline handlers (sync and async), in publishing
    /// order, with the metadata it was stored with, and returns their reports.
    pub async fn dispatch_committed(self) -> Vec<Report> {
        let bus = self.bus;
        let mut reports = Vec::with_capacity(self.pending.len());
        for p in self.pending {
            reports.push(p.event.dispatch(bus, p.meta).await);
        }
        reports
    }
}
