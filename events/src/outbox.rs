//! Storing published events for their durable handlers: the sink a store backend implements
//! (so the core never imports a store), and the outbox that publishes into the caller's own
//! transaction.

use std::fmt;
use std::time::{Duration, SystemTime};

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

/// The id of a durable timer (UUID v7): what `schedule` returns, what the CLI's `timers`
/// lists and `timers cancel <id>` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub Uuid);

impl TimerId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for TimerId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for TimerId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// When a timer is due: after a delay (from a [`Duration`]) or at a time (from a
/// [`SystemTime`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// This long after it is scheduled.
    After(Duration),
    /// At this time (a time in the past fires at the worker's next look).
    At(SystemTime),
}

impl Due {
    /// The due time of a timer scheduled at `now`.
    pub fn at(self, now: SystemTime) -> SystemTime {
        match self {
            Due::After(delay) => now + delay,
            Due::At(at) => at,
        }
    }
}

impl From<Duration> for Due {
    fn from(delay: Duration) -> Self {
        Due::After(delay)
    }
}

impl From<SystemTime> for Due {
    fn from(at: SystemTime) -> Self {
        Due::At(at)
    }
}

/// A timer to store: at `due_at` a worker appends `event` to the log (its aggregate's stream,
/// with its event id, correlation and causation) and deletes the timer, in one transaction;
/// the event then takes the normal durable path (retries, dead letters, hold-back).
#[derive(Clone, Debug, PartialEq)]
pub struct NewTimer {
    /// Its id.
    pub id: TimerId,
    /// When it fires.
    pub due_at: SystemTime,
    /// Who scheduled it (a process manager and its instance, for example), if anyone said.
    pub owner: Option<String>,
    /// Its name for its owner: a timer with the owner and key of a stored one replaces it.
    pub key: Option<String>,
    /// The event it fires.
    pub event: DurableRecord,
}

/// Which stored timer to cancel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimerTarget {
    /// The timer with this id.
    Id(TimerId),
    /// The timer an owner scheduled under a key.
    Key {
        /// The owner.
        owner: String,
        /// The key.
        key: String,
    },
}

/// A timer write, untyped: staged into an [`Outbox`] (committed with its events and views) or
/// by a durable handler while a worker delivers (committed with its checkpoint).
#[derive(Clone, Debug, PartialEq)]
pub enum TimerWrite {
    /// Stores a timer; one with the same owner and key is replaced (re-scheduled).
    Schedule(NewTimer),
    /// Deletes a timer, if it is still there (cancelling one that fired or never existed
    /// writes nothing).
    Cancel(TimerTarget),
}

impl TimerWrite {
    /// The write that schedules `event` at `when` (from `now`) under `owner` and `key`, with
    /// `meta` as the fired event's id, correlation and causation.
    pub(crate) fn schedule<E: DomainEvent + serde::Serialize>(
        when: Due,
        event: &E,
        meta: &Meta,
        owner: Option<String>,
        key: Option<String>,
    ) -> Result<(TimerId, Self), ScheduleError> {
        let record =
            DurableRecord::of(event, meta, |e| serde_json::to_value(e)).map_err(|source| {
                ScheduleError::Encode {
                    event: E::NAME,
                    source,
                }
            })?;
        let id = TimerId::new();
        let timer = NewTimer {
            id,
            due_at: when.at(SystemTime::now()),
            owner,
            key,
            event: record,
        };
        Ok((id, TimerWrite::Schedule(timer)))
    }
}

/// A timer could not be scheduled; nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The event to fire does not serialize.
    #[error("cannot schedule `{event}`: it does not serialize ({source}); fix its `Serialize`")]
    Encode {
        /// The event's name.
        event: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// The bus has no store to keep the timer in.
    #[error("cannot schedule `{event}`: the bus has no store to keep timers in; give it one with `Bus::builder().store(events::store::connect(url).await?)`")]
    NoStore {
        /// The event's name.
        event: &'static str,
    },
    /// The store refused or failed.
    #[error("cannot schedule `{event}`: the store failed: {source}")]
    NotStored {
        /// The event's name.
        event: &'static str,
        /// Why.
        source: BoxError,
    },
    /// Staged outside a durable handler's delivery (by a task it spawned, after it returned).
    #[error("cannot schedule or cancel a timer after the delivery was settled: use `Timers` only while the handler runs, not from a task it spawned")]
    Settled,
}

/// An outbox whose commit failed: what it scheduled was not stored either (an outbox closure
/// that returns `ScheduleError` gets the commit's error as one).
impl From<PublishError> for ScheduleError {
    fn from(e: PublishError) -> Self {
        ScheduleError::NotStored {
            event: e.event(),
            source: Box::new(e),
        }
    }
}

/// Where a bus stores the events that have durable handlers (`Bus::builder().store(..)`).
/// Every store backend implements it, and so does the handle `events::store::connect(url)`
/// returns; each record goes to the end of its aggregate's stream.
#[async_trait::async_trait]
pub trait DurableSink: Send + Sync + 'static {
    /// Appends the records, in order, writes the views and the timers, in one transaction:
    /// all of it or none (a view no longer at its expected version fails it). Returns the
    /// records' positions in the log, in the same order.
    async fn commit(
        &self,
        records: Vec<DurableRecord>,
        views: Vec<ViewWrite>,
        timers: Vec<TimerWrite>,
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
    timers: Vec<TimerWrite>,
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
            timers: Vec::new(),
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

    /// Schedules `event` to be published at `when` (a [`Duration`] from now, or a
    /// [`SystemTime`]): a timer stored in the transaction (rolled back with it), which a
    /// worker fires at its due time by appending the event to the log, where its durable
    /// handlers take it (with retries and dead letters). Its inline handlers do not run.
    /// Fails only when the event does not serialize.
    ///
    /// ```
    /// use std::time::Duration;
    /// use events::{Bus, BoxError, DomainEvent};
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(DomainEvent, Serialize, Deserialize)]
    /// struct PaymentDue { order: u32 }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = events::store::connect("sqlite::memory:").await?;
    /// let bus = Bus::builder().store(store.clone()).build()?;
    /// let (id, _) = store
    ///     .outbox(&bus, |outbox| outbox.schedule(Duration::from_secs(3600), &PaymentDue { order: 7 }))
    ///     .await?;
    /// assert_eq!(store.timers().await?[0].id, id);
    /// # Ok::<(), BoxError>(()) }).unwrap();
    /// ```
    pub fn schedule<E: DomainEvent + serde::Serialize>(
        &mut self,
        when: impl Into<Due>,
        event: &E,
    ) -> Result<TimerId, ScheduleError> {
        self.stage_timer(when.into(), event, None, None)
    }

    /// Schedules `event` at `when` as `owner`'s timer `key` (a process manager's
    /// `PaymentTimeout`): a stored timer of the same owner and key is replaced (re-scheduled),
    /// so an owner has at most one timer per key.
    pub fn schedule_keyed<E: DomainEvent + serde::Serialize>(
        &mut self,
        owner: impl Into<String>,
        key: impl Into<String>,
        when: impl Into<Due>,
        event: &E,
    ) -> Result<TimerId, ScheduleError> {
        self.stage_timer(when.into(), event, Some(owner.into()), Some(key.into()))
    }

    fn stage_timer<E: DomainEvent + serde::Serialize>(
        &mut self,
        when: Due,
        event: &E,
        owner: Option<String>,
        key: Option<String>,
    ) -> Result<TimerId, ScheduleError> {
        let (id, write) = TimerWrite::schedule(when, event, &Meta::of(event), owner, key)?;
        self.timers.push(write);
        Ok(id)
    }

    /// Cancels `owner`'s timer `key` in the transaction, if it is still stored.
    pub fn cancel_timer(&mut self, owner: impl Into<String>, key: impl Into<String>) {
        self.timers.push(TimerWrite::Cancel(TimerTarget::Key {
            owner: owner.into(),
            key: key.into(),
        }));
    }

    /// Cancels the timer `id` in the transaction, if it is still stored.
    pub fn cancel_timer_id(&mut self, id: TimerId) {
        self.timers.push(TimerWrite::Cancel(TimerTarget::Id(id)));
    }

    /// The timer writes staged so far, to make in the transaction.
    pub fn timers(&self) -> &[TimerWrite] {
        &self.timers
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
        if !records.is_empty() || !self.views.is_empty() || !self.timers.is_empty() {
            let first = records
                .first()
                .map_or("(outbox views and timers)", |r| r.name);
            let views = std::mem::take(&mut self.views);
            let timers = std::mem::take(&mut self.timers);
            let Some(sink) = sink.or_else(|| self.bus.sink()) else {
                return Err(crate::bus::refused(NotPublished::NoStore {
                    event: first,
                    handlers: Vec::new(),
                }));
            };
            let committed = sink.commit(records, views, timers).await;
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
