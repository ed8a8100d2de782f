//! The consuming side: takes another service's events from a broker into this service's own
//! store, where its durable handlers get them from the worker.
//!
//! **Scheme: inbox, then the ordinary engine.** Each message is appended to this service's log
//! (its envelope kept: the same event id, name, version, aggregate type and id, payload,
//! correlation and causation, occurred-at), and acknowledged once that append committed. From
//! there the event is a stored event like any other: the [`Worker`](crate::worker::Worker)
//! delivers it to this service's durable handlers with their retry policies, back-off, circuit
//! breaker, dead letters (in this service's store, with the event, so `dead-letters`, `retry`,
//! `drop` and `replay` work as for local events), hold-back per aggregate, and the same
//! upcasting. The broker's redelivery limit never decides anything: a message is acknowledged
//! only once it is safe in the store.
//!
//! **Idempotency by event id, order per aggregate from the origin's sequence.** The event goes
//! to its own aggregate (`<aggregate type>` / `<aggregate id>`, as the origin named it) with
//! the expected version `sequence - 1` (its sequence in the origin's aggregate stream), in one
//! transaction with a look-up of its event id ([`DurableStore::append_once`]), so:
//! - an event the store already holds (same event id: a redelivery after a consumer died
//!   between the append and the acknowledgement, a republish, the same event relayed again to
//!   another stream) is acknowledged and counted as a duplicate, never appended or handled
//!   twice;
//! - an event that arrives before an earlier one of its aggregate (two consumers compete for
//!   the messages; one holds the earlier one) is refused by the version check and handed back
//!   with a short delay, until the earlier one is in: the aggregate's order in the inbox is the
//!   origin's order, whatever the number of consumers;
//! - another event where the incoming one belongs (this service writes to that aggregate too,
//!   or two origins publish it) stops the inbox with [`TransportError::InboxConflict`]: an
//!   aggregate has one origin, and neither event is taken silently.
//!
//! A message that is not an event (its envelope is missing or malformed, or its body is not
//! JSON) is rejected (never redelivered), logged as an error with where it sits in the broker,
//! and counted ([`InboxSummary::rejected`]): it stays in the broker for inspection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Consumer, Delivery, Next, Settle, TransportError};
use crate::stop::Stop;
use crate::store::durable::{AppendOnce, DurableStore, IntoDurableStore};
use crate::store::{NewEvent, StoreError, StoredEvent, StreamId};

/// Takes a broker's events into this service's store until stopped.
///
/// ```no_run
/// # async fn run(store: events::store::SqliteStore) -> Result<(), events::transport::TransportError> {
/// use events::transport::Inbox;
///
/// // the stream the origin relays to, and this service's consumer (group) on it
/// let summary = Inbox::connect(&store, "redis://127.0.0.1:6379", "ORDERS", "shipping")
///     .await?
///     .run_until(events::worker::shutdown_signal())
///     .await?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
#[must_use]
pub struct Inbox {
    store: Arc<dyn DurableStore>,
    consumer: Box<dyn Consumer>,
}

/// What an inbox run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InboxSummary {
    /// Events appended to this service's log.
    pub ingested: u64,
    /// Redeliveries of events already in the log (acknowledged, not appended again).
    pub duplicates: u64,
    /// Events handed back because an earlier event of their aggregate was not in yet.
    pub deferred: u64,
    /// Messages that were not events (rejected, logged).
    pub rejected: u64,
    /// Fetches that failed (connection lost) and were started again.
    pub interruptions: u64,
}

impl std::fmt::Display for InboxSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "inbox: {} ingested, {} duplicates, {} deferred, {} rejected, {} interruptions",
            self.ingested, self.duplicates, self.deferred, self.rejected, self.interruptions
        )
    }
}

/// What became of one message.
enum Taken {
    Ingested,
    Duplicate,
    Deferred,
    Rejected,
}

impl Inbox {
    /// Connects to the broker at `url` (`nats://`, `redis://`, `amqp://`) to take the events of
    /// `source` (the JetStream stream, the Redis stream key, or the RabbitMQ exchange) through
    /// this service's durable consumer (consumer group, or quorum queue
    /// `<exchange>.<consumer>`) `consumer`, created if missing.
    pub async fn connect(
        store: impl IntoDurableStore,
        url: &str,
        source: &str,
        consumer: &str,
    ) -> Result<Self, TransportError> {
        let consumer: Box<dyn Consumer> = match super::scheme(url)? {
            #[cfg(feature = "nats")]
            super::Scheme::Nats => {
                let client = super::nats::connect(url, "events-inbox").await?;
                Box::new(super::nats::NatsConsumer::new(
                    client,
                    source.to_owned(),
                    consumer.to_owned(),
                    Duration::from_secs(30),
                ))
            }
            #[cfg(feature = "redis")]
            super::Scheme::Redis => Box::new(
                super::redis::RedisConsumer::connect(
                    url,
                    source,
                    consumer,
                    Duration::from_secs(30),
                )
                .await?,
            ),
            #[cfg(feature = "rabbitmq")]
            super::Scheme::Rabbit => {
                Box::new(super::rabbitmq::RabbitConsumer::connect(url, source, consumer).await?)
            }
        };
        Ok(Self::new(store, consumer))
    }

    /// An inbox over any [`Consumer`].
    pub fn new(store: impl IntoDurableStore, consumer: Box<dyn Consumer>) -> Self {
        Self {
            store: store.into_durable_store(),
            consumer,
        }
    }

    /// Runs until `shutdown` completes. The message in hand is finished first.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<InboxSummary, TransportError> {
        super::until_shutdown(shutdown, |stopped| self.take(stopped, false)).await
    }

    /// Takes everything pending, then returns (tests, one-off catch-up).
    pub async fn drain(self) -> Result<InboxSummary, TransportError> {
        let (_stop, stopped) = watch::channel(false);
        self.take(stopped, true).await
    }

    async fn take(
        mut self,
        stopped: watch::Receiver<bool>,
        drain: bool,
    ) -> Result<InboxSummary, TransportError> {
        let mut stop = Stop::new(stopped, None);
        let mut summary = InboxSummary::default();
        let mut backoff = Duration::from_millis(100);
        loop {
            if stop.requested() {
                break;
            }
            let taken = match self.consumer.next(drain).await {
                Ok(Next::Drained) => break,
                Ok(Next::Idle) => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(Next::Message(delivery)) => self.take_one(delivery).await,
                Err(e) => Err(e),
            };
            match taken {
                Ok(Taken::Ingested) => summary.ingested += 1,
                Ok(Taken::Duplicate) => summary.duplicates += 1,
                Ok(Taken::Deferred) => summary.deferred += 1,
                Ok(Taken::Rejected) => {
                    summary.rejected += 1;
                    metrics::counter!("events_inbox_rejected_total", "source" => self.consumer.source().to_owned()).increment(1);
                }
                Err(e) if e.is_transient() => {
                    summary.interruptions += 1;
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "inbox interrupted; fetching again");
                    if stop.wait(backoff, None).await {
                        break;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!(%summary, "inbox stopped");
        Ok(summary)
    }

    async fn take_one(&self, delivery: Delivery) -> Result<Taken, TransportError> {
        let Delivery {
            event,
            at,
            attempt,
            handle,
        } = delivery;
        let source = self.consumer.source();
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(stream = source, %at, error = %e, "message rejected: not an event; it stays in the stream");
                handle.settle(Settle::Reject).await?;
                return Ok(Taken::Rejected);
            }
        };
        let local = StreamId {
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
        };
        let at = local.at(event.sequence.saturating_sub(1));
        match self.store.append_once(at, self.new_event(&event)).await {
            Ok(AppendOnce::Appended { .. }) => {
                handle.settle(Settle::Ack).await?;
                Ok(Taken::Ingested)
            }
            Ok(AppendOnce::AlreadyStored { position }) => {
                tracing::debug!(
                    event_id = %event.event_id,
                    origin_position = event.position,
                    position,
                    "event already in this store (same event id): a redelivery; acknowledged, not appended again"
                );
                handle.settle(Settle::Ack).await?;
                Ok(Taken::Duplicate)
            }
            Err(StoreError::Conflict { actual, .. }) if actual >= event.sequence => {
                // Another event (not this one: its id is not in the store) sits where this one
                // belongs. Handed back, not acknowledged: it is taken once the conflict is
                // resolved.
                let found = self
                    .store
                    .load_stream(local, event.sequence.saturating_sub(1))
                    .await
                    .ok()
                    .and_then(|events| events.into_iter().next())
                    .map(|e| e.event_id);
                let _ = handle.settle(Settle::Retry(Duration::from_secs(5))).await;
                let error = TransportError::InboxConflict {
                    stream: source.to_owned(),
                    position: event.position,
                    event_id: event.event_id,
                    found,
                };
                tracing::error!(aggregate = %format_args!("{}/{}", event.aggregate_type, event.aggregate_id), sequence = event.sequence, %error, "inbox stopped");
                Err(error)
            }
            Err(StoreError::Conflict { actual, .. }) => {
                // An earlier event of the aggregate is in another consumer's hands (or on its
                // way back after that consumer died): hand this one back until it is in.
                let delay = Duration::from_millis(50)
                    .saturating_mul(1 << attempt.saturating_sub(1).min(5))
                    .min(Duration::from_secs(2));
                tracing::debug!(
                    position = event.position,
                    sequence = event.sequence,
                    inbox_at = actual,
                    "event deferred: an earlier event of its aggregate is not in yet"
                );
                handle.settle(Settle::Retry(delay)).await?;
                Ok(Taken::Deferred)
            }
            Err(e) => {
                let _ = handle.settle(Settle::Retry(Duration::ZERO)).await;
                Err(e.into())
            }
        }
    }

    /// The event this service stores for an incoming one: the same envelope, the source and
    /// the origin's position added to its metadata fields.
    fn new_event(&self, event: &StoredEvent) -> NewEvent {
        let (stream_field, position_field) = self.consumer.fields();
        let mut metadata = event.metadata.clone();
        metadata
            .fields
            .insert(stream_field.to_owned(), self.consumer.source().to_owned());
        metadata
            .fields
            .insert(position_field.to_owned(), event.position.to_string());
        NewEvent {
            event_id: event.event_id,
            name: event.name.clone(),
            version: event.version,
            payload: event.payload.clone(),
            metadata,
            occurred_at: event.occurred_at,
        }
    }
}
