//! The relay: publishes a service's log, in order, to a JetStream stream.
//!
//! **In order, no gap.** Publishes are pipelined (up to [`Relay::max_in_flight`] waiting for
//! their acknowledgement), and each one carries `Nats-Expected-Last-Sequence`: the stream
//! sequence the message before it got. If a publish is lost (connection dropped, server
//! restarted), every later one of the run is refused by the server instead of being stored
//! after the hole, so the stream is always a prefix of the log, in log order.
//!
//! **No duplicate.** The relay's checkpoint (the last position the server acknowledged) lives
//! in the store, under the name `relay:<stream>`. Every run (the first one, and a new one after
//! a connection failure) starts by reading the stream's last message: its `Events-Position`
//! header says how far the stream really is, which may be past the checkpoint when the relay
//! was killed between the acknowledgement and the checkpoint write. The relay moves its
//! checkpoint there (after checking that the log has the same event at that position) and goes
//! on from the next event, so nothing is published twice, however long the relay was down.
//! `Nats-Msg-Id` (the event id) and the stream's de-duplication window are a second guard.
//!
//! **One relay per stream at a time**: it holds a lease in the store; a second relay waits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::stream::StreamSettings;
use super::NatsError;
use crate::store::durable::{DurableStore, IntoDurableStore};
use crate::transport::nats::NatsPublisher;
pub use crate::transport::RelaySummary;

/// Publishes a store's log to a JetStream stream until stopped (the transport
/// [`Relay`](crate::transport::Relay) over NATS, with NATS's own settings).
///
/// ```no_run
/// # async fn run(store: events::store::SqliteStore) -> Result<(), events::nats::NatsError> {
/// use events::nats::Relay;
///
/// let summary = Relay::connect(&store, "nats://127.0.0.1:4222")
///     .await?
///     .stream("ORDERS", "orders")
///     .run() // until SIGINT/SIGTERM
///     .await?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
#[must_use]
pub struct Relay {
    store: Arc<dyn DurableStore>,
    client: async_nats::Client,
    settings: StreamSettings,
    max_in_flight: usize,
    poll_interval: Duration,
    lease_ttl: Duration,
}

impl Relay {
    /// Connects to the NATS server at `url` (the client reconnects on its own when the
    /// connection drops).
    pub async fn connect(store: impl IntoDurableStore, url: &str) -> Result<Self, NatsError> {
        let client = super::connect(url, "events-relay").await?;
        Ok(Self::new(store, client))
    }

    /// A relay over an existing NATS connection.
    pub fn new(store: impl IntoDurableStore, client: async_nats::Client) -> Self {
        Self {
            store: store.into_durable_store(),
            client,
            settings: StreamSettings::default(),
            max_in_flight: 1024,
            poll_interval: Duration::from_millis(200),
            lease_ttl: Duration::from_secs(15),
        }
    }

    /// The stream to publish to and its subject prefix (default `EVENTS`, `events`).
    pub fn stream(mut self, name: impl Into<String>, subject_prefix: impl Into<String>) -> Self {
        self.settings.name = name.into();
        self.settings.subject_prefix = subject_prefix.into();
        self
    }

    /// The stream's de-duplication window (default 2 minutes).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.settings.duplicate_window = window;
        self
    }

    /// How many publishes may wait for their acknowledgement at once (default 1024).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// How often to look for events appended by other processes (default 200 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// How long the relay's lease outlives a relay that died without giving it up (default
    /// 15 s): until then, a new relay waits.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The stream settings in use.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// The name of the relay's checkpoint and lease in the store.
    pub fn checkpoint_name(&self) -> String {
        format!("relay:{}", self.settings.name)
    }

    /// The transport relay these settings make.
    pub fn into_transport(self) -> crate::transport::Relay {
        let publisher = NatsPublisher::new(self.client, self.settings, self.max_in_flight);
        crate::transport::Relay::new(self.store, Box::new(publisher))
            .max_in_flight(self.max_in_flight)
            .poll_interval(self.poll_interval)
            .lease_ttl(self.lease_ttl)
    }

    /// Runs until SIGINT or SIGTERM.
    pub async fn run(self) -> Result<RelaySummary, NatsError> {
        self.into_transport().run().await
    }

    /// Runs until `shutdown` completes. What is in flight is acknowledged first.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RelaySummary, NatsError> {
        self.into_transport().run_until(shutdown).await
    }

    /// Publishes everything the log holds now, then returns (tests, one-off catch-up).
    pub async fn drain(self) -> Result<RelaySummary, NatsError> {
        self.into_transport().drain().await
    }
}
