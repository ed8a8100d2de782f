//! Brokers between services, behind one seam: NATS JetStream (feature `nats`), Redis Streams
//! (feature `redis`) and RabbitMQ (feature `rabbitmq`), chosen by URL.
//!
//! ```text
//!  ordering service                        broker                          shipping service
//!  commands -> log (outbox) -> Relay ----> nats://, redis://, ----> Inbox
//!                                          amqp:// -> its own log
//!                 checkpoint `relay:..`                                    -> its durable handlers,
//!                 in the ordering store                                       retries, dead letters
//! ```
//!
//! The seam is two narrow traits, one per side, and the engines above them are written once:
//!
//! - [`Publisher`] (the relay's side): say what the broker holds last from this log, then send
//!   events in log order, each confirmed by the broker; [`Relay`] keeps at most
//!   [`Relay::max_in_flight`] confirmations outstanding, moves its checkpoint in the store only
//!   past confirmed events, and reconciles the checkpoint with the broker's last event on
//!   every (re)start, so a killed relay neither skips nor repeats an event.
//! - [`Consumer`] (the inbox's side): hand out the next message with a handle that
//!   acknowledges it, hands it back after a delay, or rejects it; [`Inbox`] appends each event
//!   to the consuming service's own log (idempotent by event id, in the origin's
//!   per-aggregate order) and acknowledges only after that store commit.
//!
//! | URL | broker | order | de-duplication |
//! |---|---|---|---|
//! | `nats://host:4222` | JetStream stream, durable pull consumer | the stream is the log's order (`Nats-Expected-Last-Sequence`) | `Nats-Msg-Id` = event id; the inbox by event id |
//! | `amqp://host:5672/%2f` | a durable topic exchange (persistent messages, publisher confirms), a quorum queue per consuming service with a single active consumer | one channel in log order, one active consumer per queue; after a failure the relay republishes from its checkpoint (RabbitMQ cannot read back its last message) | `message_id` = event id; the inbox by event id (and it holds back an event whose predecessor has not arrived) |
//! | `redis://host:6379` | a Redis stream (`XADD`), a consumer group | entry id = log position: the stream is the log's order | the entry id (a position is refused twice); the inbox by event id |
//!
//! **How remote events are named in the consuming store.** An event keeps its envelope:
//! the same event id, name, aggregate type and id, and its sequence in that aggregate (so
//! `log --aggregate Card/s-5` on the consuming side finds what the origin stored as
//! `Card/s-5`). Where it came from is in two metadata fields: `<broker>.stream` (the stream,
//! key or exchange) and `<broker>.position` (its position in the origin's log). An aggregate
//! belongs to one service: if the consuming store already holds another event where an incoming
//! one belongs (the consuming service writes to that aggregate too, or two origins publish the
//! same aggregate type), the inbox stops with [`TransportError::InboxConflict`] instead of
//! taking either silently.
//!
//! **Kafka** would fit the same seam: the relay's [`Publisher`] is an idempotent producer
//! (`enable.idempotence`, `acks=all`, `max.in.flight` ≤ 5 keeps order) writing to a topic
//! keyed by aggregate id, the broker's last event read from the end of each partition; the
//! [`Consumer`] is a consumer group whose acknowledgement is the offset commit after the store
//! commit (a hand-back is "do not commit; seek back"). It is not shipped: no Kafka server can
//! be run in this project's CI, and no transport ships without a real-server test.

pub mod envelope;
mod inbox;
#[cfg(feature = "nats")]
pub(crate) mod nats;
#[cfg(feature = "rabbitmq")]
#[cfg_attr(docsrs, doc(cfg(feature = "rabbitmq")))]
pub mod rabbitmq;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod relay;

pub use inbox::{Inbox, InboxSummary};
pub use relay::{Relay, RelaySummary};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{StoreError, StoredEvent};

/// What can go wrong between a service and a broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The server could not be reached.
    #[error("cannot connect to {broker} at `{url}`: {reason}; {hint}")]
    Connect {
        /// The broker's kind (`NATS`, `Redis`).
        broker: &'static str,
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
        /// What to check.
        hint: &'static str,
    },
    /// The URL names no transport this build has.
    #[error("`{url}` names no transport of this build: use nats://HOST:PORT (feature `nats`), redis://HOST:PORT (feature `redis`) or amqp://HOST:PORT (feature `rabbitmq`)")]
    UnknownScheme {
        /// The URL given.
        url: String,
    },
    /// The stream could not be created, updated or read.
    #[error("stream `{stream}`: {reason}")]
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
    #[error("the inbox of stream `{stream}` holds {} where event {event_id} (origin position {position}) belongs: the aggregate is written by this service or by two origins, or the origin's log was rebuilt; an aggregate must have one origin (its events are stored under their own aggregate type and id)", .found.map_or("another event".to_owned(), |id| format!("event {id}")))]
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

impl TransportError {
    /// Whether starting again may help (a lost connection, a timed-out acknowledgement).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Publish { .. } | Self::Stream { .. })
    }
}

/// The last event a broker holds from a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastEvent {
    /// Its event id.
    pub event_id: uuid::Uuid,
    /// Its position in the log it came from.
    pub position: u64,
}

/// What the broker said about one sent event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// Stored.
    Stored,
    /// Already held (a second publish of the same event): not stored again.
    Duplicate,
}

/// The broker's confirmation of one sent event, awaited later (publishes are pipelined).
pub type Confirmation = Pin<Box<dyn Future<Output = Result<Confirmed, TransportError>> + Send>>;

/// The relay's side of a broker: where a log goes.
///
/// A publisher keeps the log's order: once a send fails, no later send of the same run may be
/// stored after the hole (NATS: the expected last sequence; Redis: the entry id is the position
/// and one connection per run). The relay starts a new run with [`Publisher::prepare`].
#[async_trait::async_trait]
pub trait Publisher: Send + Sync {
    /// The name of the relay's checkpoint and lease in the store.
    fn checkpoint_name(&self) -> String;
    /// The destination's name, for errors and logs.
    fn destination(&self) -> &str;
    /// Whether [`Publisher::prepare`] can say what the broker holds last (default: yes).
    /// RabbitMQ cannot: its relay goes on from the checkpoint, and the inbox de-duplicates.
    fn reads_back(&self) -> bool {
        true
    }
    /// Starts a run: creates the destination if missing, (re)connects, and returns the last
    /// event it holds from this log.
    async fn prepare(&mut self) -> Result<Option<LastEvent>, TransportError>;
    /// Sends one event, the next in log order; the confirmation is awaited later.
    async fn send(&mut self, event: &StoredEvent) -> Result<Confirmation, TransportError>;
}

/// How an inbox settles one message, once its event is safe in the store (or cannot be).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Done: the event is in the store (or was already).
    Ack,
    /// Hand it back, to be delivered again after about this delay.
    Retry(Duration),
    /// Not an event: never deliver it again (it stays in the broker for inspection).
    Reject,
}

/// A received message's handle to the broker.
#[async_trait::async_trait]
pub trait Acknowledge: Send {
    /// Settles the message.
    async fn settle(self: Box<Self>, how: Settle) -> Result<(), TransportError>;
}

/// Where a message sits in the broker, for logs: `stream_sequence=4`, `entry_id=7-0`.
#[derive(Clone, Debug)]
pub struct Locator {
    /// The field's name.
    pub field: &'static str,
    /// Its value.
    pub value: String,
}

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.field, self.value)
    }
}

/// One message handed to an inbox.
pub struct Delivery {
    /// The event it carries, or why it is not one.
    pub event: Result<StoredEvent, String>,
    /// Where it sits in the broker.
    pub at: Locator,
    /// How many times it was handed out, this time included (from 1).
    pub attempt: u32,
    /// Its handle.
    pub handle: Box<dyn Acknowledge>,
}

/// What a consumer has next.
// Returned and consumed at once, never stored: boxing would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// A message.
    Message(Delivery),
    /// Nothing arrived in a while (the inbox looks at its stop signal and asks again).
    Idle,
    /// Everything pending was handed out and settled (only asked for by a draining inbox).
    Drained,
}

/// The inbox's side of a broker: where another service's events come from.
#[async_trait::async_trait]
pub trait Consumer: Send + Sync {
    /// The source's name (stream, key): in errors, logs, and the metadata of stored events.
    fn source(&self) -> &str;
    /// The metadata fields naming the source and the origin position (`nats.stream`,
    /// `nats.position`).
    fn fields(&self) -> (&'static str, &'static str);
    /// The next message, waiting a short while (about a second) for one. With `drain`, says
    /// [`Next::Drained`] once nothing is pending.
    async fn next(&mut self, drain: bool) -> Result<Next, TransportError>;
}

/// Runs `work` until it ends or `shutdown` completes; then tells it to stop (through the
/// watch it was given) and waits for it to finish what it has in hand.
pub(crate) async fn until_shutdown<T, F: Future<Output = T>>(
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

/// The broker a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // which variants are built depends on the features
pub(crate) enum Scheme {
    #[cfg(feature = "nats")]
    Nats,
    #[cfg(feature = "redis")]
    Redis,
    #[cfg(feature = "rabbitmq")]
    Rabbit,
}

#[cfg(feature = "cli")]
impl Scheme {
    /// Whether it is NATS.
    pub(crate) fn is_nats(self) -> bool {
        #[allow(unreachable_patterns)]
        match self {
            #[cfg(feature = "nats")]
            Self::Nats => true,
            _ => false,
        }
    }
    /// Whether it is Redis.
    pub(crate) fn is_redis(self) -> bool {
        #[allow(unreachable_patterns)]
        match self {
            #[cfg(feature = "redis")]
            Self::Redis => true,
            _ => false,
        }
    }
}

pub(crate) fn scheme(url: &str) -> Result<Scheme, TransportError> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    match scheme {
        #[cfg(feature = "nats")]
        "nats" | "tls" => Ok(Scheme::Nats),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(Scheme::Redis),
        #[cfg(feature = "rabbitmq")]
        "amqp" | "amqps" => Ok(Scheme::Rabbit),
        _ => Err(TransportError::UnknownScheme {
            url: url.to_owned(),
        }),
    }
}
