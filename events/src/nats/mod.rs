//! NATS JetStream between services (feature `nats`): one implementation of the
//! [transport seam](crate::transport), with its own builder for NATS settings.
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

/// What can go wrong between a service and NATS: the transports' error.
pub type NatsError = crate::transport::TransportError;

/// Connects to a NATS server; the client reconnects on its own, without limit, when the
/// connection drops.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, NatsError> {
    crate::transport::nats::connect(url, name).await
}
