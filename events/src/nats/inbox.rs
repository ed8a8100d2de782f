//! The consuming side: a durable pull consumer that takes another service's events into this
//! service's own store, where its durable handlers get them from the worker.
//!
//! **Scheme: inbox, then the ordinary engine.** Each message is appended to this service's log
//! (its envelope kept: the same event id, name, version, payload, correlation and causation,
//! occurred-at), and acknowledged once that append committed. From there the event is a stored
//! event like any other: the [`Worker`](crate::worker::Worker) delivers it to this service's
//! durable handlers with their retry policies, back-off, circuit breaker, dead letters (in this
//! service's store, with the event, so `dead-letters`, `retry`, `drop` and `replay` work as for
//! local events), hold-back per aggregate, and the same upcasting. JetStream's `MaxDeliver`
//! never decides anything: it is unlimited, and a message is acknowledged only once it is safe
//! in the store.
//!
//! **Idempotency by event id, order per aggregate from the origin's sequence.** The event goes
//! to the stream `<NATS stream>:<aggregate type>` / `<aggregate id>` of this service's log with
//! the expected version `sequence - 1` (its sequence in the origin's aggregate stream), in one
//! transaction with a look-up of its event id
//! ([`DurableStore::append_once`]), so:
//! - an event the store already holds (same event id: a redelivery, a republish under another
//!   `Nats-Msg-Id` after the de-duplication window, the same event relayed again to another
//!   stream) is acknowledged and counted as a duplicate, never appended or handled twice;
//! - a redelivered event (the consumer died after the append, before the ack) also finds its
//!   sequence taken: it is acknowledged and counted as a duplicate, never appended twice (the
//!   inbox's streams are named after the NATS stream, and the relay refuses to fill one stream
//!   from two logs, so the sequence identifies the event; a stream deleted and created again
//!   for another log needs a new stream name, or the consuming store's inbox events of the old
//!   one are taken for the new one's);
//! - an event that arrives before an earlier one of its aggregate (two consumers compete for
//!   the messages; one holds the earlier one) is refused by the version check and handed back
//!   with a short delay (`nak`), until the earlier one is in: the aggregate's order in the
//!   inbox is the origin's order, whatever the number of consumers.
//!
//! The consumer therefore takes the whole stream (no subject filter): every sequence of every
//! aggregate must arrive. Handlers pick their own event types from the log as usual.
//!
//! **Settings.** `AckWait` (default 30 s) is how long a message handed to a consumer that died
//! stays invisible before it is redelivered. `MaxAckPending` (default 1000) bounds the messages
//! handed out and not yet acknowledged: when it is reached the server hands out nothing more
//! until acknowledgements come (or `AckWait` passes), so a consumer that stalls stalls the
//! whole durable consumer: keep it above the fetch batch (100) times the number of consumer
//! processes. A message that is not an event (its headers are missing or malformed, or its
//! body is not JSON) is terminated (`Term`: never redelivered), logged as an error with its
//! stream sequence and counted ([`InboxSummary::rejected`]): it stays in the stream for
//! inspection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::headers;
use super::NatsError;
use crate::store::durable::{AppendOnce, DurableStore, IntoDurableStore};
use crate::store::{NewEvent, StoreError, StoredEvent, StreamId};
use crate::worker::Stop;

/// Metadata field naming the NATS stream an event came from.
pub const SOURCE_STREAM_FIELD: &str = "nats.stream";
/// Metadata field holding the event's position in the origin's log.
pub const SOURCE_POSITION_FIELD: &str = "nats.position";

/// Takes a stream's events into this service's store until stopped.
///
/// ```no_run
/// # async fn run(store: events::store::SqliteStore) -> Result<(), events::nats::NatsError> {
/// use events::nats::Inbox;
///
/// let summary = Inbox::connect(&store, "nats://127.0.0.1:4222")
///     .await?
///     .source("ORDERS", "shipping") // the stream, and this service's durable consumer
///     .run_until(events::worker::shutdown_signal())
///     .await?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
#[must_use]
pub struct Inbox {
    store: Arc<dyn DurableStore>,
    js: jetstream::Context,
    stream: String,
    consumer: String,
    batch: usize,
    ack_wait: Duration,
    max_ack_pending: i64,
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
    /// Messages that were not events (terminated, logged).
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
    /// Connects to the NATS server at `url` (the client reconnects on its own).
    pub async fn connect(store: impl IntoDurableStore, url: &str) -> Result<Self, NatsError> {
        let client = super::connect(url, "events-inbox").await?;
        Ok(Self::new(store, client))
    }

    /// An inbox over an existing NATS connection.
    pub fn new(store: impl IntoDurableStore, client: async_nats::Client) -> Self {
        Self {
            store: store.into_durable_store(),
            js: jetstream::ContextBuilder::new()
                .timeout(Duration::from_secs(5))
                .build(client),
            stream: "EVENTS".to_owned(),
            consumer: "inbox".to_owned(),
            batch: 100,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1000,
        }
    }

    /// The stream to read and this service's durable consumer on it (created if missing).
    pub fn source(mut self, stream: impl Into<String>, consumer: impl Into<String>) -> Self {
        self.stream = stream.into();
        self.consumer = consumer.into();
        self
    }

    /// How long a message handed to a consumer that died waits before it is redelivered
    /// (default 30 s). Applies when the durable consumer is created.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// Runs until `shutdown` completes. The message in hand is finished first.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<InboxSummary, NatsError> {
        super::until_shutdown(shutdown, |stopped| self.take(stopped, false)).await
    }

    /// Takes everything the consumer has pending, then returns (tests, one-off catch-up).
    pub async fn drain(self) -> Result<InboxSummary, NatsError> {
        let (_stop, stopped) = watch::channel(false);
        self.take(stopped, true).await
    }

    async fn take(
        self,
        stopped: watch::Receiver<bool>,
        drain: bool,
    ) -> Result<InboxSummary, NatsError> {
        let mut stop = Stop::new(stopped, None);
        let mut summary = InboxSummary::default();
        let mut backoff = Duration::from_millis(100);
        loop {
            if stop.requested() {
                break;
            }
            match self.fetch(&mut summary, &stop, drain).await {
                Ok(true) => break,
                Ok(false) => backoff = Duration::from_millis(100),
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

    fn consumer_config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.consumer.clone()),
            description: Some(
                "events inbox: appends each event to the service's own log".to_owned(),
            ),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: -1,
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }

    /// One pull request: takes what arrives within it. `Ok(true)` when done (drained or
    /// stopped).
    async fn fetch(
        &self,
        summary: &mut InboxSummary,
        stop: &Stop,
        drain: bool,
    ) -> Result<bool, NatsError> {
        let stream_error = |reason: String| NatsError::Stream {
            stream: self.stream.clone(),
            reason,
        };
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| stream_error(e.to_string()))?;
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(&self.consumer, self.consumer_config())
            .await
            .map_err(|e| stream_error(format!("consumer `{}`: {e}", self.consumer)))?;
        if drain {
            let info = consumer
                .get_info()
                .await
                .map_err(|e| stream_error(format!("consumer `{}`: {e}", self.consumer)))?;
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return Ok(true);
            }
        }
        let mut messages = consumer
            .batch()
            .max_messages(self.batch)
            .expires(Duration::from_millis(if drain { 200 } else { 1000 }))
            .messages()
            .await
            .map_err(|e| stream_error(format!("fetch: {e}")))?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| stream_error(format!("fetch: {e}")))?;
            match self.take_one(&message).await? {
                Taken::Ingested => summary.ingested += 1,
                Taken::Duplicate => summary.duplicates += 1,
                Taken::Deferred => summary.deferred += 1,
                Taken::Rejected => summary.rejected += 1,
            }
            if stop.requested() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn take_one(&self, message: &jetstream::Message) -> Result<Taken, NatsError> {
        let info = message.info().ok();
        let stream_sequence = info.as_ref().map_or(0, |i| i.stream_sequence);
        let delivered = info.as_ref().map_or(1, |i| i.delivered.max(1));
        let event = match headers::from_message(
            message.subject.as_str(),
            message.headers.as_ref(),
            &message.payload,
        ) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(stream = self.stream.as_str(), stream_sequence, error = %e, "message rejected: not an event; it stays in the stream");
                self.ack(message, AckKind::Term).await?;
                return Ok(Taken::Rejected);
            }
        };
        let aggregate_type = format!("{}:{}", self.stream, event.aggregate_type);
        let local = StreamId {
            aggregate_type: &aggregate_type,
            aggregate_id: &event.aggregate_id,
        };
        let at = local.at(event.sequence.saturating_sub(1));
        match self.store.append_once(at, self.new_event(&event)).await {
            Ok(AppendOnce::Appended { .. }) => {
                self.ack(message, AckKind::Ack).await?;
                Ok(Taken::Ingested)
            }
            Ok(AppendOnce::AlreadyStored { position }) => {
                tracing::debug!(
                    event_id = %event.event_id,
                    origin_position = event.position,
                    position,
                    "event already in this store (same event id): a redelivery; acknowledged, not appended again"
                );
                self.ack(message, AckKind::Ack).await?;
                Ok(Taken::Duplicate)
            }
            Err(StoreError::Conflict { actual, .. }) if actual >= event.sequence => {
                tracing::debug!(
                    position = event.position,
                    "redelivered event already in the inbox"
                );
                self.ack(message, AckKind::Ack).await?;
                Ok(Taken::Duplicate)
            }
            Err(StoreError::Conflict { actual, .. }) => {
                // An earlier event of the aggregate is in another consumer's hands (or on its
                // way back after that consumer died): hand this one back until it is in.
                let delay = Duration::from_millis(50)
                    .saturating_mul(1 << (delivered - 1).clamp(0, 5) as u32)
                    .min(Duration::from_secs(2));
                tracing::debug!(
                    position = event.position,
                    sequence = event.sequence,
                    inbox_at = actual,
                    "event deferred: an earlier event of its aggregate is not in yet"
                );
                self.ack(message, AckKind::Nak(Some(delay))).await?;
                Ok(Taken::Deferred)
            }
            Err(e) => {
                let _ = message.ack_with(AckKind::Nak(None)).await;
                Err(e.into())
            }
        }
    }

    /// The event this service stores for an incoming one: the same envelope, the NATS stream and
    /// the origin's position added to its metadata fields.
    fn new_event(&self, event: &StoredEvent) -> NewEvent {
        let mut metadata = event.metadata.clone();
        metadata
            .fields
            .insert(SOURCE_STREAM_FIELD.to_owned(), self.stream.clone());
        metadata
            .fields
            .insert(SOURCE_POSITION_FIELD.to_owned(), event.position.to_string());
        NewEvent {
            event_id: event.event_id,
            name: event.name.clone(),
            version: event.version,
            payload: event.payload.clone(),
            metadata,
            occurred_at: event.occurred_at,
        }
    }

    async fn ack(&self, message: &jetstream::Message, kind: AckKind) -> Result<(), NatsError> {
        message.ack_with(kind).await.map_err(|e| NatsError::Stream {
            stream: self.stream.clone(),
            reason: format!("acknowledgement failed: {e}"),
        })
    }
}
