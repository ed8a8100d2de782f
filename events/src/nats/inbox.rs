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
//! to its own aggregate `<aggregate type>` / `<aggregate id>` in this service's log (named as
//! the origin named it: `log --aggregate Card/s-5` finds it; the NATS stream is in the
//! metadata field `nats.stream`, the origin's position in `nats.position`), with the expected
//! version `sequence - 1` (its sequence in the origin's aggregate stream), in one transaction
//! with a look-up of its event id
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

use super::NatsError;
use crate::store::durable::{DurableStore, IntoDurableStore};
use crate::transport::nats::NatsConsumer;
pub use crate::transport::InboxSummary;

/// Metadata field naming the NATS stream an event came from.
pub const SOURCE_STREAM_FIELD: &str = "nats.stream";
/// Metadata field holding the event's position in the origin's log.
pub const SOURCE_POSITION_FIELD: &str = "nats.position";

/// Takes a stream's events into this service's store until stopped (the transport
/// [`Inbox`](crate::transport::Inbox) over NATS, with NATS's own settings).
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
    client: async_nats::Client,
    stream: String,
    consumer: String,
    ack_wait: Duration,
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
            client,
            stream: "EVENTS".to_owned(),
            consumer: "inbox".to_owned(),
            ack_wait: Duration::from_secs(30),
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

    /// The transport inbox these settings make.
    pub fn into_transport(self) -> crate::transport::Inbox {
        let consumer = NatsConsumer::new(self.client, self.stream, self.consumer, self.ack_wait);
        crate::transport::Inbox::new(self.store, Box::new(consumer))
    }

    /// Runs until `shutdown` completes. The message in hand is finished first.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<InboxSummary, NatsError> {
        self.into_transport().run_until(shutdown).await
    }

    /// Takes everything the consumer has pending, then returns (tests, one-off catch-up).
    pub async fn drain(self) -> Result<InboxSummary, NatsError> {
        self.into_transport().drain().await
    }
}
