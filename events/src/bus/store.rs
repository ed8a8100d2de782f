//! The store-backed walk: what the bus does for events that have durable handlers. It stores
//! them when they are published (or refuses, and runs nothing), schedules timers, and makes
//! the untyped records of the sink (`crate::sink`) from typed events.

use std::time::SystemTime;

use super::{refused, report_of, Bus};
use crate::error::{NotPublished, PublishError};
use crate::event::DomainEvent;
use crate::handler::Encode;
use crate::meta::{LazyMeta, Meta};
use crate::registry::{EventState, Slot};
use crate::report::{FailureCause, Report};
use crate::sink::{Due, DurableRecord, DurableSink, NewTimer, ScheduleError, TimerId, TimerWrite};

impl Bus {
    /// Schedules `event` to be published at `when` (a [`Duration`](std::time::Duration) from now, or a
    /// [`SystemTime`](std::time::SystemTime)): a timer stored in the bus's store
    /// ([`BusBuilder::store`](super::BusBuilder::store)) that a worker fires at its due time, appending the event to the
    /// log for its durable handlers. Inside a transaction of your own, use the outbox's
    /// `schedule` instead. Fails (and stores nothing) without a store, when the store fails,
    /// or when the event does not serialize.
    ///
    /// ```
    /// use std::time::Duration;
    /// use events::{Bus, BoxError, DomainEvent};
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(DomainEvent, Serialize, Deserialize)]
    /// struct ReminderDue { user: u32 }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = events::store::connect("sqlite::memory:").await?;
    /// let bus = Bus::builder().store(store.clone()).build()?;
    /// let id = bus.schedule(Duration::from_secs(60), &ReminderDue { user: 1 }).await?;
    /// assert_eq!(store.timers().await?[0].id, id);
    /// # Ok::<(), BoxError>(()) }).unwrap();
    /// ```
    pub async fn schedule<E: DomainEvent + serde::Serialize>(
        &self,
        when: impl Into<Due>,
        event: &E,
    ) -> Result<TimerId, ScheduleError> {
        let Some(sink) = &self.inner.sink else {
            return Err(ScheduleError::NoStore { event: E::NAME });
        };
        let (id, write) = TimerWrite::schedule(when.into(), event, &Meta::of(event), None, None)?;
        sink.commit(Vec::new(), Vec::new(), vec![write])
            .await
            .map_err(|source| ScheduleError::NotStored {
                event: E::NAME,
                source,
            })?;
        tracing::debug!(event = E::NAME, timer = %id, "timer scheduled");
        Ok(id)
    }

    /// Fails as a sync `publish` of `E` does when `E` has durable handlers.
    pub(crate) fn check_sync<E: DomainEvent>(&self) -> Result<(), PublishError> {
        let durable = &E::Slot::registry().state().durable;
        if durable.is_empty() {
            return Ok(());
        }
        Err(refused(NotPublished::NeedsAwait {
            event: E::NAME,
            handlers: durable.to_vec(),
        }))
    }

    /// The store events with durable handlers are appended to, if the bus has one.
    pub(crate) fn sink(&self) -> Option<&dyn DurableSink> {
        self.inner.sink.as_deref()
    }

    /// How to serialize `E` for the store, if it has durable handlers.
    pub(crate) fn durable_encoder<E: DomainEvent>(&self) -> Option<Encode<E>> {
        let state = E::Slot::registry().state();
        if state.durable.is_empty() {
            None
        } else {
            state.encode
        }
    }

    /// Stores the event for its durable handlers from `dispatch`, unless it is already in
    /// the log; nothing has run yet, so an error here means nothing happened.
    pub(super) async fn store<E: DomainEvent>(
        &self,
        event: &E,
        meta: &LazyMeta<'_>,
        state: &EventState<E>,
    ) -> Result<(), PublishError> {
        let meta = meta.get();
        if meta.position.is_some() {
            return Ok(());
        }
        let Some(sink) = &self.inner.sink else {
            return Err(refused(NotPublished::NoStore {
                event: E::NAME,
                handlers: state.durable.to_vec(),
            }));
        };
        let not_stored = |source| {
            refused(NotPublished::NotStored {
                event: E::NAME,
                source,
            })
        };
        let record = match state.encode {
            Some(encode) => DurableRecord::of(event, meta, encode)
                .map_err(|e| not_stored(format!("cannot serialize it: {e}").into()))?,
            None => return Err(not_stored(
                "it has durable handlers but no encoder; rebuild with the same `events` version"
                    .into(),
            )),
        };
        let position = sink
            .commit(vec![record], Vec::new(), Vec::new())
            .await
            .map_err(not_stored)?;
        tracing::debug!(event = E::NAME, ?position, "stored for durable handlers");
        Ok(())
    }
}

impl PublishError {
    /// The report of a follow-up event that could not be stored: its publisher's publish
    /// already succeeded, so each of its durable handlers is reported failed instead.
    #[cold]
    pub(crate) fn into_report<E: DomainEvent>(self) -> Report {
        let mut report = report_of::<E>();
        for &handler in E::Slot::registry().state().durable.iter() {
            report.fail(handler, FailureCause::NotStored(self.to_string()));
        }
        report
    }
}

impl DurableRecord {
    /// The record of `event` with the metadata its inline handlers see.
    pub(crate) fn of<E: DomainEvent>(
        event: &E,
        meta: &Meta,
        encode: Encode<E>,
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
