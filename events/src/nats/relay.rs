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
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self};
use tokio::sync::watch;

use super::headers;
use super::stream::StreamSettings;
use super::NatsError;
use crate::store::durable::{
    Claim, ClaimRequest, Claimed, DurableStore, IntoDurableStore, Owner, SegmentId, Settlement,
};
use crate::store::StoredEvent;
use crate::worker::Stop;

/// Publishes a store's log to a JetStream stream until stopped.
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
    js: jetstream::Context,
    client: async_nats::Client,
    settings: StreamSettings,
    max_in_flight: usize,
    page: usize,
    poll_interval: Duration,
    checkpoint_every: u64,
    lease_ttl: Duration,
    owner: Owner,
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

/// The JetStream context the relay publishes through: its own limit on acknowledgements
/// waited for stays above the relay's, so the relay's pipeline is the one that bounds them.
fn context(client: async_nats::Client, max_in_flight: usize) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .max_ack_inflight(max_in_flight * 2)
        .backpressure_on_inflight(true)
        .build(client)
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
        let max_in_flight = 1024;
        Self {
            store: store.into_durable_store(),
            js: context(client.clone(), max_in_flight),
            client,
            settings: StreamSettings::default(),
            max_in_flight,
            page: 512,
            poll_interval: Duration::from_millis(200),
            checkpoint_every: 1000,
            lease_ttl: Duration::from_secs(15),
            owner: Owner::current(),
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
        self.js = context(self.client.clone(), self.max_in_flight);
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

    /// The claim on the relay's checkpoint `name` (one segment: the log is relayed in order),
    /// as this relay's owner, for its lease time.
    fn claim_request<'a>(&'a self, name: &'a str) -> ClaimRequest<'a> {
        ClaimRequest {
            segment: SegmentId {
                handler: name,
                segment: 0,
            },
            owner: &self.owner,
            ttl: self.lease_ttl,
        }
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
        stopped: watch::Receiver<bool>,
        drain: bool,
    ) -> Result<RelaySummary, NatsError> {
        let name = self.checkpoint_name();
        let mut stop = Stop::new(stopped, None);
        let mut summary = RelaySummary::default();
        let mut backoff = Duration::from_millis(100);
        let mut claim = None;
        let outcome = loop {
            if stop.requested() {
                break Ok(());
            }
            let held = match self.store.claim(self.claim_request(&name)).await {
                Ok(Claimed::Acquired(c)) => claim.insert(c).clone(),
                Ok(Claimed::HeldBy(lease)) => {
                    tracing::debug!(%lease, "another relay holds the stream; waiting");
                    if stop.wait(self.poll_interval, None).await {
                        break Ok(());
                    }
                    continue;
                }
                Err(e) => break Err(e.into()),
            };
            match self.run_once(held, &mut summary, &mut stop, drain).await {
                Ok(()) => break Ok(()),
                Err(e) if e.is_transient() => {
                    summary.interruptions += 1;
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "relay interrupted; starting again from the stream's last event");
                    if stop.wait(backoff, None).await {
                        break Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => break Err(e),
            }
        };
        let released = match &claim {
            Some(claim) => self.store.release(claim).await,
            None => Ok(()),
        };
        outcome?;
        released?;
        summary.checkpoint = self.checkpoint(&name).await?;
        tracing::info!(%summary, "relay stopped");
        Ok(summary)
    }

    /// The relay's checkpoint (0 before its first run).
    async fn checkpoint(&self, name: &str) -> Result<u64, NatsError> {
        Ok(self
            .store
            .checkpoints()
            .await?
            .into_iter()
            .find(|c| c.handler == name && c.segment == 0)
            .map_or(0, |c| c.position))
    }

    /// One run: reconcile with the stream, then publish until stopped, drained or failed.
    async fn run_once(
        &self,
        mut claim: Claim,
        summary: &mut RelaySummary,
        stop: &mut Stop,
        drain: bool,
    ) -> Result<(), NatsError> {
        self.settings.ensure(&self.js).await?;
        let (mut checkpoint, mut sequence) = self.reconcile(&claim).await?;
        let mut saved = checkpoint;
        let mut in_flight: VecDeque<(u64, PublishAckFuture)> = VecDeque::new();
        let mut renewed = Instant::now();
        let mut read = checkpoint;
        let mut wakeups = self.store.wakeups();
        loop {
            if stop.requested() {
                self.settle(&mut in_flight, 0, &mut checkpoint, summary)
                    .await?;
                return self.save(&claim, &mut saved, checkpoint).await;
            }
            if renewed.elapsed() > self.lease_ttl / 3 {
                claim = match self.store.claim(self.claim_request(&claim.handler)).await? {
                    Claimed::Acquired(c) => c,
                    Claimed::HeldBy(_) => {
                        return Err(NatsError::LeaseLost {
                            lease: claim.handler.clone(),
                        })
                    }
                };
                renewed = Instant::now();
            }
            // Look at the wake-up counter before reading, so an append in between is not missed.
            wakeups.borrow_and_update();
            let page = self.store.read_log(read, self.page).await?;
            if page.is_empty() {
                self.settle(&mut in_flight, 0, &mut checkpoint, summary)
                    .await?;
                self.save(&claim, &mut saved, checkpoint).await?;
                if drain || stop.wait(self.poll_interval, Some(&mut wakeups)).await {
                    return Ok(());
                }
                continue;
            }
            for event in page {
                // Full: wait for the older half of the acknowledgements, then publish a run of
                // messages again (rather than alternating one acknowledgement, one publish).
                if in_flight.len() >= self.max_in_flight {
                    self.settle(
                        &mut in_flight,
                        self.max_in_flight / 2,
                        &mut checkpoint,
                        summary,
                    )
                    .await?;
                }
                let position = event.position;
                let ack = self.publish(&event, sequence).await?;
                in_flight.push_back((position, ack));
                read = position;
                sequence += 1;
            }
            if checkpoint - saved >= self.checkpoint_every {
                self.save(&claim, &mut saved, checkpoint).await?;
            }
        }
    }

    /// Brings the checkpoint to what the stream really holds; returns it and the stream's last
    /// sequence.
    async fn reconcile(&self, claim: &Claim) -> Result<(u64, u64), NatsError> {
        let name = claim.handler.as_str();
        let checkpoint = self.checkpoint(name).await?;
        let Some(last) = self.settings.last_event(&self.js).await? else {
            if checkpoint > 0 {
                tracing::warn!(
                    stream = self.settings.name.as_str(),
                    checkpoint,
                    "the stream is empty but the relay's checkpoint is past position 0: it was deleted or purged; events up to the checkpoint are not in it (replay the relay's checkpoint from 0 to publish them again)"
                );
            }
            return Ok((checkpoint, 0));
        };
        let logged = self
            .store
            .read_log(last.position.saturating_sub(1), 1)
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
            self.store
                .settle(
                    claim,
                    Settlement::Run {
                        last: last.position,
                        views: &[],
                        timers: &[],
                    },
                )
                .await?;
            return Ok((last.position, last.sequence));
        }
        if last.position < checkpoint {
            tracing::warn!(
                stream = self.settings.name.as_str(),
                stream_position = last.position,
                checkpoint,
                "the stream ends before the relay's checkpoint: messages were removed from it; those events are not republished (replay the relay's checkpoint to publish them again)"
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

    async fn save(&self, claim: &Claim, saved: &mut u64, checkpoint: u64) -> Result<(), NatsError> {
        if checkpoint > *saved {
            self.store
                .settle(
                    claim,
                    Settlement::Run {
                        last: checkpoint,
                        views: &[],
                        timers: &[],
                    },
                )
                .await?;
            *saved = checkpoint;
        }
        Ok(())
    }
}
