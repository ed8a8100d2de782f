//! NATS JetStream between services (feature `nats`).
//!
//! ```text
//!  ordering service                          NATS JetStream                  shipping service
//!  commands -> log (outbox) -> Relay ----> stream ORDERS (orders.>) ----> durable pull consumer
//!                     checkpoint `relay:ORDERS`                            -> its own durable
//!                     in the ordering store                                   handlers, retries,
//!                                                                             dead letters in the
//!                                                                             shipping store
//! ```
//!
//! - [`Relay`] publishes a log to a stream, in log order, each event once: see [`relay`] for
//!   how a killed relay neither skips nor repeats an event.
//! - [`Inbox`] takes a stream's events into a consuming service's own store, where its
//!   durable handlers get them from the worker, with their retries, dead letters and
//!   hold-back: see [`inbox`] for the scheme (per-aggregate order and idempotency from the
//!   origin's aggregate sequence) and the `AckWait` / `MaxAckPending` settings.
//! - [`headers`] is the wire format: the payload as the body, the envelope in headers,
//!   `Nats-Msg-Id` = the event id, subject `<prefix>.<event name>.<aggregate id>`.
//!
//! **De-duplication window.** The stream remembers each `Nats-Msg-Id` for
//! [`StreamSettings::duplicate_window`] (2 minutes) and drops a second publish of the same
//! event inside it. The relay does not rely on it (it reconciles with the stream's last event on
//! every start); a longer window costs server memory per message.

pub mod headers;
pub mod inbox;
pub mod relay;
mod stream;

pub use inbox::{Inbox, InboxSummary};
pub use relay::{Relay, RelaySummary};
pub use stream::StreamSettings;

use std::future::Future;

use tokio::sync::watch;

use crate::store::StoreError;

/// What can go wrong between a service and NATS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The server could not be reached.
    #[error("cannot connect to NATS at `{url}`: {reason}; is nats-server running there with JetStream enabled (`nats-server -js`)?")]
    Connect {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The stream could not be created, updated or read.
    #[error("JetStream stream `{stream}`: {reason}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// Why.
        reason: String,
    },
    /// A publish was not acknowledged; the relay starts again from the stream's last event.
    #[error("publishing the event at position {position} failed: {reason}")]
    Publish {
        /// The event's position in the log.
        position: u64,
        /// Why.
        reason: String,
    },
    /// The stream's last event is not the log's event at that position: the stream is filled
    /// from another log.
    #[error("stream `{stream}` ends with event {event_id} at position {position}, but this log has {} there: the stream holds another log's events; give each log its own stream and subject prefix", .found.map_or("no event".to_owned(), |id| format!("event {id}")))]
    ForeignStream {
        /// The stream's name.
        stream: String,
        /// The position the stream's last message says it has.
        position: u64,
        /// The event id of the stream's last message.
        event_id: uuid::Uuid,
        /// The event id the log has at that position.
        found: Option<uuid::Uuid>,
    },
    /// The inbox already holds another event where an incoming one belongs (same aggregate,
    /// same sequence).
    #[error("the inbox of stream `{stream}` holds {} where event {event_id} (origin position {position}) belongs: two origins share the stream name, or the origin's log was rebuilt; give the new origin its own stream name and consumer", .found.map_or("nothing".to_owned(), |id| format!("event {id}")))]
    InboxConflict {
        /// The stream's name.
        stream: String,
        /// The incoming event's position in the origin's log.
        position: u64,
        /// The incoming event's id.
        event_id: uuid::Uuid,
        /// The event the inbox has there.
        found: Option<uuid::Uuid>,
    },
    /// Another process took the relay's lease (this one stalled for longer than the lease).
    #[error("lease `{lease}` was taken over by another process; this one stops")]
    LeaseLost {
        /// The lease's name.
        lease: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NatsError {
    /// Whether starting again may help (a lost connection, a timed-out acknowledgement).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Publish { .. } | Self::Stream { .. })
    }
}

/// Runs `work` until it ends or `shutdown` completes; then tells it to stop (through the
/// watch it was given) and waits for it to finish what it has in hand.
async fn until_shutdown<T, F: Future<Output = T>>(
    shutdown: impl Future<Output = ()>,
    work: impl FnOnce(watch::Receiver<bool>) -> F,
) -> T {
    let (stop, stopped) = watch::channel(false);
    let work = work(stopped);
    tokio::pin!(work, shutdown);
    tokio::select! {
        done = &mut work => return done,
        () = &mut shutdown => {}
    }
    tracing::info!("shutdown requested; finishing what is in hand");
    let _ = stop.send(true);
    work.await
}

/// Connects to a NATS server; the client reconnects on its own, without limit, when the
/// connection drops.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, NatsError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(|e| NatsError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}
