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

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self};
use tokio::sync::{watch, Notify};

use super::headers;
use super::stream::StreamSettings;
use super::NatsError;
use crate::store::{EventStore, SqliteStore, StoreError, StoredEvent};
use crate::worker::{queries, wait};

/// What the relay needs from the store of the log it relays: the log, a checkpoint, a lease
/// and a wake-up.
pub trait RelayStore: Send + Sync + 'static {
    /// Up to `limit` events after position `after`, in position order.
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;
    /// The checkpoint named `name` (0 when there is none).
    fn checkpoint(&self, name: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Sets the checkpoint named `name`.
    fn save_checkpoint(
        &self,
        name: &str,
        position: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Takes or renews the lease `name` for `owner`; `false` when someone else holds it.
    fn lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives the lease up.
    fn release(
        &self,
        name: &str,
        owner: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Notified when this process appends to the log (events appended by other processes are
    /// found by polling).
    fn appended(&self) -> Option<&Notify>;
}

impl RelayStore for SqliteStore {
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_all(after, limit).await
    }

    async fn checkpoint(&self, name: &str) -> Result<u64, StoreError> {
        queries::checkpoint(&self.lock(), name)
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        self.reset_checkpoint(name, position)
    }

    async fn lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        queries::acquire_lease(self, name, owner, ttl)
    }

    async fn release(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        queries::release_lease(self, name, owner)
    }

    fn appended(&self) -> Option<&Notify> {
        Some(SqliteStore::appended(self))
    }
}

/// Publishes a store's log to a JetStream stream until stopped.
///
/// ```no_run
/// # async fn run(store: events::store::SqliteStore) -> Result<(), events::nats::NatsError> {
/// use events::nats::Relay;
///
/// let summary = Relay::connect(store, "nats://127.0.0.1:4222")
///     .await?
///     .stream("ORDERS", "orders")
///     .run() // until SIGINT/SIGTERM
///     .await?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
#[must_use]
pub struct Relay<S> {
    store: S,
    js: jetstream::Context,
    settings: StreamSettings,
    max_in_flight: usize,
    page: usize,
    poll_interval: Duration,
    checkpoint_every: u64,
    lease_ttl: Duration,
    owner: String,
}

/// What a relay run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelaySummary {
    /// Events stored in the stream (acknowledged by the server).
    pub published: u64,
    /// Publishes the server reported as duplicates (already in the stream: not stored again).
    pub duplicates: u64,
    /// Runs that failed (connection lost, acknowledgement timed out) and were started again.
    pub interruptions: u64,
    /// The checkpoint at the end: the last position the stream holds.
    pub checkpoint: u64,
}

impl std::fmt::Display for RelaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "relay: {} published, {} duplicates, {} interruptions, checkpoint {}",
            self.published, self.duplicates, self.interruptions, self.checkpoint
        )
    }
}

/// How a run ended without error.
enum Ended {
    Stopped,
    Drained,
}

impl<S: RelayStore> Relay<S> {
    /// Connects to the NATS server at `url` (the client reconnects on its own when the
    /// connection drops).
    pub async fn connect(store: S, url: &str) -> Result<Self, NatsError> {
        let client = super::connect(url, "events-relay").await?;
        Ok(Self::new(store, client))
    }

    /// A relay over an existing NATS connection.
    pub fn new(store: S, client: async_nats::Client) -> Self {
        let max_in_flight = 1024;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .max_ack_inflight(max_in_flight * 2)
            .backpressure_on_inflight(true)
            .build(client);
        Self {
            store,
            js,
            settings: StreamSettings::default(),
            max_in_flight,
            page: 512,
            poll_interval: Duration::from_millis(200),
            checkpoint_every: 1000,
            lease_ttl: Duration::from_secs(15),
            owner: format!("{}@{}", std::process::id(), uuid::Uuid::now_v7()),
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

    /// Runs until SIGINT or SIGTERM.
    pub async fn run(self) -> Result<RelaySummary, NatsError> {
        self.run_until(crate::worker::shutdown_signal()).await
    }

    /// Runs until `shutdown` completes. What is in flight is acknowledged first.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RelaySummary, NatsError> {
        super::until_shutdown(shutdown, |stopped| self.relay(stopped, false)).await
    }

    /// Publishes everything the log holds now, then returns (tests, one-off catch-up).
    pub async fn drain(self) -> Result<RelaySummary, NatsError> {
        let (_stop, stopped) = watch::channel(false);
        self.relay(stopped, true).await
    }

    async fn relay(
        self,
        mut stopped: watch::Receiver<bool>,
        drain: bool,
    ) -> Result<RelaySummary, NatsError> {
        let name = self.checkpoint_name();
        let mut summary = RelaySummary::default();
        let mut backoff = Duration::from_millis(100);
        let outcome = loop {
            if *stopped.borrow() {
                break Ok(());
            }
            match self.store.lease(&name, &self.owner, self.lease_ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(
                        lease = name.as_str(),
                        "another relay holds the lease; waiting"
                    );
                    if wait(&mut stopped, self.poll_interval, None).await {
                        break Ok(());
                    }
                    continue;
                }
                Err(e) => break Err(e.into()),
            }
            match self
                .run_once(&name, &mut summary, &mut stopped, drain)
                .await
            {
                Ok(_) => break Ok(()),
                Err(e) if e.is_transient() => {
                    summary.interruptions += 1;
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "relay interrupted; starting again from the stream's last event");
                    if wait(&mut stopped, backoff, None).await {
                        break Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => break Err(e),
            }
        };
        let released = self.store.release(&name, &self.owner).await;
        outcome?;
        released?;
        summary.checkpoint = self.store.checkpoint(&name).await?;
        tracing::info!(%summary, "relay stopped");
        Ok(summary)
    }

    /// One run: reconcile with the stream, then publish until stopped, drained or failed.
    async fn run_once(
        &self,
        name: &str,
        summary: &mut RelaySummary,
        stopped: &mut watch::Receiver<bool>,
        drain: bool,
    ) -> Result<Ended, NatsError> {
        self.settings.ensure(&self.js).await?;
        let (mut checkpoint, mut sequence) = self.reconcile(name).await?;
        let mut saved = checkpoint;
        let mut in_flight: VecDeque<(u64, PublishAckFuture)> = VecDeque::new();
        let mut lease_renewed = Instant::now();
        let mut read = checkpoint;
        loop {
            if *stopped.borrow() {
                self.settle(&mut in_flight, 0, &mut checkpoint, summary)
                    .await?;
                self.save(name, &mut saved, checkpoint).await?;
                return Ok(Ended::Stopped);
            }
            if lease_renewed.elapsed() > self.lease_ttl / 3 {
                if !self.store.lease(name, &self.owner, self.lease_ttl).await? {
                    return Err(NatsError::LeaseLost {
                        lease: name.to_owned(),
                    });
                }
                lease_renewed = Instant::now();
            }
            // Listen before looking, so an append between the two is not missed.
            let appended = self.store.appended().map(Notify::notified);
            tokio::pin!(appended);
            if let Some(n) = appended.as_mut().as_pin_mut() {
                n.enable();
            }
            let page = self.store.read_after(read, self.page).await?;
            if page.is_empty() {
                self.settle(&mut in_flight, 0, &mut checkpoint, summary)
                    .await?;
                self.save(name, &mut saved, checkpoint).await?;
                if drain {
                    return Ok(Ended::Drained);
                }
                if wait(stopped, self.poll_interval, appended.as_pin_mut()).await {
                    return Ok(Ended::Stopped);
                }
                continue;
            }
            for event in page {
                self.settle(
                    &mut in_flight,
                    self.max_in_flight - 1,
                    &mut checkpoint,
                    summary,
                )
                .await?;
                let position = event.position;
                let ack = self.publish(&event, sequence).await?;
                in_flight.push_back((position, ack));
                read = position;
                sequence += 1;
            }
            if checkpoint - saved >= self.checkpoint_every {
                self.save(name, &mut saved, checkpoint).await?;
            }
        }
    }

    /// Brings the checkpoint to what the stream really holds; returns it and the stream's last
    /// sequence.
    async fn reconcile(&self, name: &str) -> Result<(u64, u64), NatsError> {
        let checkpoint = self.store.checkpoint(name).await?;
        let Some(last) = self.settings.last_event(&self.js).await? else {
            if checkpoint > 0 {
                tracing::warn!(
                    stream = self.settings.name.as_str(),
                    checkpoint,
                    "the stream is empty but the relay's checkpoint is past position 0: it was deleted or purged; events up to the checkpoint are not in it (reset the checkpoint `{name}` to 0 to publish them again)"
                );
            }
            return Ok((checkpoint, 0));
        };
        let logged = self
            .store
            .read_after(last.position.saturating_sub(1), 1)
            .await?;
        match logged.first() {
            Some(e) if e.position == last.position && e.event_id == last.event_id => {}
            found => {
                return Err(NatsError::ForeignStream {
                    stream: self.settings.name.clone(),
                    position: last.position,
                    event_id: last.event_id,
                    found: found
                        .filter(|e| e.position == last.position)
                        .map(|e| e.event_id),
                })
            }
        }
        if last.position > checkpoint {
            tracing::info!(
                from = checkpoint,
                to = last.position,
                "relay checkpoint moved to the stream's last event (acknowledged before the relay stopped, not yet recorded)"
            );
            self.store.save_checkpoint(name, last.position).await?;
            return Ok((last.position, last.sequence));
        }
        if last.position < checkpoint {
            tracing::warn!(
                stream = self.settings.name.as_str(),
                stream_position = last.position,
                checkpoint,
                "the stream ends before the relay's checkpoint: messages were removed from it; those events are not republished (reset the checkpoint `{name}` to publish them again)"
            );
        }
        Ok((checkpoint, last.sequence))
    }

    async fn publish(
        &self,
        event: &StoredEvent,
        last_sequence: u64,
    ) -> Result<PublishAckFuture, NatsError> {
        let subject = headers::subject(&self.settings.subject_prefix, event);
        let payload = serde_json::to_vec(&event.payload).expect("a JSON value serializes");
        let message = PublishMessage::build()
            .headers(headers::to_headers(event))
            .expected_last_sequence(last_sequence)
            .payload(payload.into());
        self.js
            .send_publish(subject, message)
            .await
            .map_err(|e| NatsError::Publish {
                position: event.position,
                reason: e.to_string(),
            })
    }

    /// Waits for acknowledgements, oldest first, until at most `keep` are in flight.
    async fn settle(
        &self,
        in_flight: &mut VecDeque<(u64, PublishAckFuture)>,
        keep: usize,
        checkpoint: &mut u64,
        summary: &mut RelaySummary,
    ) -> Result<(), NatsError> {
        while in_flight.len() > keep {
            let (position, ack) = in_flight.pop_front().expect("not empty");
            let ack = ack.await.map_err(|e| match e.kind() {
                PublishErrorKind::WrongLastSequence => NatsError::Publish {
                    position,
                    reason: "the stream did not store an earlier event of this run (refused to keep the log's order)".to_owned(),
                },
                _ => NatsError::Publish {
                    position,
                    reason: e.to_string(),
                },
            })?;
            if ack.duplicate {
                summary.duplicates += 1;
                tracing::warn!(
                    position,
                    sequence = ack.sequence,
                    "the stream already held this event (a duplicate publish, dropped by the server)"
                );
            } else {
                summary.published += 1;
            }
            *checkpoint = position;
        }
        Ok(())
    }

    async fn save(&self, name: &str, saved: &mut u64, checkpoint: u64) -> Result<(), NatsError> {
        if checkpoint > *saved {
            self.store.save_checkpoint(name, checkpoint).await?;
            *saved = checkpoint;
        }
        Ok(())
    }
}
