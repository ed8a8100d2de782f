//! The outbox: publishing into the caller's own transaction. The records it hands to the store
//! are the sink's (`sink`).

use crate::bus::Bus;
use crate::error::{NotPublished, PublishError};
use crate::event::DomainEvent;
use crate::handler::BoxFuture;
use crate::meta::Meta;
use crate::report::Report;
use crate::sink::{
    Due, DurableRecord, DurableSink, ScheduleError, TimerId, TimerTarget, TimerWrite, ViewWrite,
};

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

    /// Schedules `event` to be published at `when` (a [`Duration`](std::time::Duration) from
    /// now, or a [`SystemTime`](std::time::SystemTime)): a timer stored in the transaction
    /// (rolled back with it), which a worker fires at its due time by appending the event to
    /// the log, where its durable handlers take it (with retries and dead letters). Its inline
    /// handlers do not run. Fails only when the event does not serialize.
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
