//! The relay: publishes a service's log, in order, to a broker.
//!
//! **In order, no gap.** Publishes are pipelined (up to [`Relay::max_in_flight`] waiting for
//! their confirmation); the [`Publisher`] guarantees that once one is lost, no later one of the
//! same run is stored after the hole, so the broker always holds a prefix of the log, in log
//! order.
//!
//! **No duplicate.** The relay's checkpoint (the last position the broker confirmed) lives in
//! the store. Every run (the first one, and a new one after a connection failure) starts by
//! asking the broker for the last event it holds from this log: its position says how far the
//! broker really is, which may be past the checkpoint when the relay was killed between the
//! confirmation and the checkpoint write. The relay moves its checkpoint there (after checking
//! that the log has the same event at that position) and goes on from the next event, so
//! nothing is published twice, however long the relay was down.
//!
//! **One relay per destination at a time**: it holds a lease in the store; a second relay
//! waits.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Confirmation, Confirmed, Publisher, TransportError};
use crate::stop::Stop;
use crate::store::durable::{
    Claim, ClaimRequest, Claimed, DurableStore, IntoDurableStore, Owner, SegmentId, Settlement,
};

/// Publishes a store's log to a broker chosen by URL, until stopped.
///
/// ```no_run
/// # async fn run(store: events::store::SqliteStore) -> Result<(), events::transport::TransportError> {
/// use events::transport::Relay;
///
/// // nats://HOST:PORT (feature `nats`) or redis://HOST:PORT (feature `redis`)
/// let summary = Relay::connect(&store, "redis://127.0.0.1:6379", "ORDERS", "orders")
///     .await?
///     .run() // until SIGINT/SIGTERM
///     .await?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
#[must_use]
pub struct Relay {
    store: Arc<dyn DurableStore>,
    publisher: Box<dyn Publisher>,
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
    /// Events stored by the broker (confirmed).
    pub published: u64,
    /// Publishes the broker reported as duplicates (already held: not stored again).
    pub duplicates: u64,
    /// Runs that failed (connection lost, confirmation timed out) and were started again.
    pub interruptions: u64,
    /// The checkpoint at the end: the last position the broker holds.
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

impl Relay {
    /// Connects to the broker at `url` (`nats://`, `redis://`, `amqp://`) to publish to
    /// `destination` (the JetStream stream, the Redis stream key, or the RabbitMQ topic
    /// exchange) with subject prefix `prefix` (NATS subjects and RabbitMQ routing keys;
    /// ignored by Redis, whose entries carry the envelope).
    pub async fn connect(
        store: impl IntoDurableStore,
        url: &str,
        destination: &str,
        prefix: &str,
    ) -> Result<Self, TransportError> {
        let publisher: Box<dyn Publisher> = match super::scheme(url)? {
            #[cfg(feature = "nats")]
            super::Scheme::Nats => {
                let client = super::nats::connect(url, "events-relay").await?;
                Box::new(super::nats::NatsPublisher::new(
                    client,
                    crate::nats::StreamSettings {
                        name: destination.to_owned(),
                        subject_prefix: prefix.to_owned(),
                        ..Default::default()
                    },
                    1024,
                ))
            }
            #[cfg(feature = "redis")]
            super::Scheme::Redis => {
                let _ = prefix;
                Box::new(super::redis::RedisPublisher::connect(url, destination).await?)
            }
            #[cfg(feature = "rabbitmq")]
            super::Scheme::Rabbit => {
                Box::new(super::rabbitmq::RabbitPublisher::connect(url, destination, prefix).await?)
            }
        };
        Ok(Self::new(store, publisher))
    }

    /// A relay over any [`Publisher`].
    pub fn new(store: impl IntoDurableStore, publisher: Box<dyn Publisher>) -> Self {
        Self {
            store: store.into_durable_store(),
            publisher,
            max_in_flight: 1024,
            page: 512,
            poll_interval: Duration::from_millis(200),
            checkpoint_every: 1000,
            lease_ttl: Duration::from_secs(15),
            owner: Owner::current(),
        }
    }

    /// How many publishes may wait for their confirmation at once (default 1024).
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

    /// The name of the relay's checkpoint and lease in the store.
    pub fn checkpoint_name(&self) -> String {
        self.publisher.checkpoint_name()
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

    /// Runs until SIGINT or SIGTERM.
    pub async fn run(self) -> Result<RelaySummary, TransportError> {
        self.run_until(crate::stop::shutdown_signal()).await
    }

    /// Runs until `shutdown` completes. What is in flight is confirmed first.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RelaySummary, TransportError> {
        super::until_shutdown(shutdown, |stopped| self.relay(stopped, false)).await
    }

    /// Publishes everything the log holds now, then returns (tests, one-off catch-up).
    pub async fn drain(self) -> Result<RelaySummary, TransportError> {
        let (_stop, stopped) = watch::channel(false);
        self.relay(stopped, true).await
    }

    async fn relay(
        mut self,
        stopped: watch::Receiver<bool>,
        drain: bool,
    ) -> Result<RelaySummary, TransportError> {
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
                    tracing::debug!(%lease, "another relay holds the destination; waiting");
                    if stop.wait(self.poll_interval, None).await {
                        break Ok(());
                    }
                    continue;
                }
                Err(e) => break Err(e.into()),
            };
            let published = summary.published;
            match self.run_once(held, &mut summary, &mut stop, drain).await {
                Ok(()) => break Ok(()),
                Err(e) if e.is_transient() => {
                    summary.interruptions += 1;
                    if summary.published > published {
                        // The run got going: this failure is a new one, not the last one again.
                        backoff = Duration::from_millis(100);
                    }
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "relay interrupted; starting again from the broker's last event");
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
    async fn checkpoint(&self, name: &str) -> Result<u64, TransportError> {
        Ok(self
            .store
            .checkpoints()
            .await?
            .into_iter()
            .find(|c| c.handler == name && c.segment == 0)
            .map_or(0, |c| c.position))
    }

    /// One run: reconcile with the broker, then publish until stopped, drained or failed.
    async fn run_once(
        &mut self,
        mut claim: Claim,
        summary: &mut RelaySummary,
        stop: &mut Stop,
        drain: bool,
    ) -> Result<(), TransportError> {
        let mut checkpoint = self.reconcile(&claim).await?;
        let mut saved = checkpoint;
        let mut in_flight: VecDeque<(u64, Confirmation)> = VecDeque::new();
        let mut renewed = Instant::now();
        let mut read = checkpoint;
        let mut wakeups = self.store.wakeups();
        loop {
            if stop.requested() {
                settle(&mut in_flight, 0, &mut checkpoint, summary).await?;
                return self.save(&claim, &mut saved, checkpoint).await;
            }
            if renewed.elapsed() > self.lease_ttl / 3 {
                claim = match self.store.claim(self.claim_request(&claim.handler)).await? {
                    Claimed::Acquired(c) => c,
                    Claimed::HeldBy(_) => {
                        return Err(TransportError::LeaseLost {
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
                settle(&mut in_flight, 0, &mut checkpoint, summary).await?;
                self.save(&claim, &mut saved, checkpoint).await?;
                if drain || stop.wait(self.poll_interval, Some(&mut wakeups)).await {
                    return Ok(());
                }
                continue;
            }
            for event in page {
                // Full: wait for the older half of the confirmations, then publish a run of
                // messages again (rather than alternating one confirmation, one publish).
                if in_flight.len() >= self.max_in_flight {
                    settle(
                        &mut in_flight,
                        self.max_in_flight / 2,
                        &mut checkpoint,
                        summary,
                    )
                    .await?;
                }
                let position = event.position;
                let confirmation = self.publisher.send(&event).await?;
                in_flight.push_back((position, confirmation));
                read = position;
            }
            if checkpoint - saved >= self.checkpoint_every {
                self.save(&claim, &mut saved, checkpoint).await?;
            }
        }
    }

    /// Brings the checkpoint to what the broker really holds, and returns it.
    async fn reconcile(&mut self, claim: &Claim) -> Result<u64, TransportError> {
        let name = claim.handler.as_str();
        let checkpoint = self.checkpoint(name).await?;
        let destination = self.publisher.destination().to_owned();
        let Some(last) = self.publisher.prepare().await? else {
            if checkpoint > 0 && self.publisher.reads_back() {
                tracing::warn!(
                    stream = destination.as_str(),
                    checkpoint,
                    "the stream is empty but the relay's checkpoint is past position 0: it was deleted or purged; events up to the checkpoint are not in it (replay the relay's checkpoint from 0 to publish them again)"
                );
            }
            return Ok(checkpoint);
        };
        let logged = self
            .store
            .read_log(last.position.saturating_sub(1), 1)
            .await?;
        match logged.first() {
            Some(e) if e.position == last.position && e.event_id == last.event_id => {}
            found => {
                return Err(TransportError::ForeignStream {
                    stream: destination,
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
            return Ok(last.position);
        }
        if last.position < checkpoint {
            tracing::warn!(
                stream = destination.as_str(),
                stream_position = last.position,
                checkpoint,
                "the stream ends before the relay's checkpoint: messages were removed from it; those events are not republished (replay the relay's checkpoint to publish them again)"
            );
        }
        Ok(checkpoint)
    }

    async fn save(
        &self,
        claim: &Claim,
        saved: &mut u64,
        checkpoint: u64,
    ) -> Result<(), TransportError> {
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

/// Waits for confirmations, oldest first, until at most `keep` are in flight.
async fn settle(
    in_flight: &mut VecDeque<(u64, Confirmation)>,
    keep: usize,
    checkpoint: &mut u64,
    summary: &mut RelaySummary,
) -> Result<(), TransportError> {
    while in_flight.len() > keep {
        let (position, confirmation) = in_flight.pop_front().expect("not empty");
        match confirmation.await? {
            Confirmed::Duplicate => {
                summary.duplicates += 1;
                tracing::warn!(
                    position,
                    "the broker already held this event (a duplicate publish, not stored again)"
                );
            }
            Confirmed::Stored => summary.published += 1,
        }
        *checkpoint = position;
    }
    Ok(())
}
