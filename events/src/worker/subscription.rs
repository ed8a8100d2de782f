//! One durable handler segment's delivery loop: claim, deliver what is due, settle each outcome
//! with the checkpoint, and give up the work as soon as the claim is lost.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use std::collections::{HashMap, HashSet};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::engine::{decide, Breaker, HoldBack};
use super::share::Share;
use super::{HandlerSummary, Holding, Options};
use crate::bus::{Bus, DurableTarget};
use crate::catalog::DurableShim;
use crate::catalog::{Catalog, EventInfo, HandlerInfo};
use crate::handler::{Outcome, RetryPolicy};
use crate::process::ProcessEntry;
use crate::report::FailureCause;
use crate::sourcing::{tagged, variants_of, Staged, Staging, Variant};
use crate::stop::Stop;
use crate::store::durable::{
    aggregate_key, Claim, ClaimRequest, Claimed, DurableStore, Lease, OpenCircuit, PendingFailure,
    Record, SegmentId, Settlement, Unread,
};
use crate::store::{StoreError, StoredEvent};

/// What a subscription did, once it stopped.
pub(crate) struct Finished {
    pub(crate) handler: &'static str,
    pub(crate) summary: HandlerSummary,
    /// Whether this worker held the segment's claim at some point of the run.
    pub(crate) claimed: bool,
    /// The last lease of another worker seen, when this one never got the claim.
    pub(crate) held_elsewhere: Option<Lease>,
    /// When it held its segment.
    pub(crate) holdings: Vec<Holding>,
}

/// Why a step ended early.
/// What the loop does after a turn.
enum Turn {
    Again,
    Stop,
}

/// Back-off after a store error: from this, doubling, up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

enum Interrupt {
    /// The claim passed to another worker: stop working on it.
    LeaseLost,
    /// A staged view write found the view changed by another worker: nothing was settled, the
    /// event is delivered again on the next turn.
    ViewConflict(StoreError),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Interrupt {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost { .. } => Interrupt::LeaseLost,
            conflict @ StoreError::ViewConflict { .. } => Interrupt::ViewConflict(conflict),
            other => Interrupt::Store(other),
        }
    }
}

pub(crate) struct Subscription {
    name: &'static str,
    segment: u32,
    event: &'static EventInfo,
    /// When the event is a derived event set's enum: its variants, whose stored events (under
    /// the variants' names) the handler receives as well as those stored under the enum's.
    variants: &'static [Variant],
    /// The names its events are stored under: the event's, and its variants'.
    names: Vec<&'static str>,
    call: DurableShim,
    retry: RetryPolicy,
    index: usize,
    breaker: Breaker,
    summary: HandlerSummary,
    claim: Option<Claim>,
    ever_claimed: bool,
    last_holder: Option<Lease>,
    /// Until when this worker's claim is known to hold.
    lease_until: Instant,
    /// Renew the claim once less than this is left of it.
    renew_within: Duration,
    /// The handler's share of segments in this worker, which this segment counts against.
    share: Arc<Share>,
    /// Since when the claim is held (this time).
    held_since: Option<SystemTime>,
    /// When it held the claim before.
    holdings: Vec<Holding>,
    /// A drain: store errors fail the run instead of being tried again.
    drain: bool,
    /// The worker's permits for events in flight (shared by all its subscriptions).
    permits: Arc<Semaphore>,
    /// How far past the first unsettled event deliveries may start.
    window: usize,
    /// A view conflict happened: the next step delivers one event at a time, so deliveries
    /// that write the same view do not conflict again and again.
    serial: bool,
    /// The circuit's state last recorded in the store: open after this many failures, or
    /// closed (`None`).
    recorded_circuit: Option<u32>,
    /// When the handler is a process manager's: its events are ordered (in flight, held back)
    /// by instance rather than by aggregate, and its stored commands are sent after each step.
    process: Option<&'static ProcessEntry>,
    /// The process manager's stored commands failed this many times in a row; they are not
    /// sent again before `commands_due` (a back-off, so a failing command handler is not
    /// called on every poll).
    command_failures: u32,
    commands_due: Option<Instant>,
}

/// The longest wait before a failing process manager's commands are sent again.
const MAX_COMMAND_BACKOFF: Duration = Duration::from_secs(30);

impl Subscription {
    pub(crate) fn new(
        handler: &HandlerInfo,
        segment: u32,
        catalog: &'static Catalog,
        options: &Options,
        share: Arc<Share>,
    ) -> Self {
        let (call, retry) = handler.durable.expect("durable handler");
        let event = catalog
            .event(handler.event_name())
            .expect("a handler's event is in the catalog");
        let variants = variants_of(event.name()).unwrap_or_default();
        let mut names = vec![event.name()];
        names.extend(
            variants
                .iter()
                .map(|v| v.name)
                .filter(|&n| n != event.name()),
        );
        Self {
            name: handler.name(),
            segment,
            event,
            variants,
            names,
            call,
            retry,
            index: handler.index,
            breaker: breaker(options, &retry),
            summary: HandlerSummary::default(),
            claim: None,
            ever_claimed: false,
            last_holder: None,
            lease_until: Instant::now(),
            renew_within: options.lease_ttl / 2,
            share,
            held_since: None,
            holdings: Vec::new(),
            drain: false,
            permits: Arc::clone(&options.permits),
            window: options.concurrency,
            serial: false,
            recorded_circuit: None,
            command_failures: 0,
            commands_due: None,
            process: crate::process::process(handler.name()),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn segment(&self) -> u32 {
        self.segment
    }

    /// Delivers until stopped (or, with `drain`, until nothing is due). A store error in a
    /// long run (the database went away, a connection broke) is logged and retried with
    /// back-off: the checkpoints are in the store, so the subscription resumes where they say
    /// (a claim that lapsed meanwhile is taken again, or lost to another worker). A drain
    /// returns the error instead, so a one-off run fails loudly.
    pub(crate) async fn run(
        mut self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        options: &Options,
        mut stop: Stop,
        drain: bool,
    ) -> Result<Finished, StoreError> {
        self.drain = drain;
        let mut wakeups = store.wakeups();
        let mut pause = RETRY_MIN;
        loop {
            match self
                .turn(bus, store, options, &mut stop, &mut wakeups, drain)
                .await
            {
                Ok(Turn::Again) => pause = RETRY_MIN,
                Ok(Turn::Stop) => break,
                Err(e) if !drain && matches!(e, StoreError::Backend(_)) => {
                    self.store_failed(
                        &e,
                        pause,
                        "the store failed; retrying, and resuming from the stored checkpoint",
                    );
                    if stop.wait(pause, None).await {
                        break;
                    }
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(claim) = self.claim.take() {
            if let Err(e) = store.release(&claim).await {
                tracing::warn!(handler = self.name, segment = self.segment, error = %e, "could not release the lease; it lapses after its TTL");
            }
            self.lost_claim();
        }
        Ok(Finished {
            handler: self.name,
            summary: self.summary,
            holdings: self.holdings,
            claimed: self.ever_claimed,
            held_elsewhere: if self.ever_claimed {
                None
            } else {
                self.last_holder
            },
        })
    }

    /// One turn of the loop: claim, deliver what is due, or wait.
    async fn turn(
        &mut self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        options: &Options,
        stop: &mut Stop,
        wakeups: &mut watch::Receiver<u64>,
        drain: bool,
    ) -> Result<Turn, StoreError> {
        if stop.requested() {
            return Ok(Turn::Stop);
        }
        if self.claim.is_some() && self.share.surplus(self.segment) {
            self.hand_over(store).await?;
        }
        let claimed = self.claim.is_some() && !self.lease_due();
        if !claimed && !self.claim(store, options).await? {
            // Try again at the next beat at the latest: a segment handed over (or a share
            // grown) must not wait for the next poll, which may be minutes away.
            let retry = options
                .poll_interval
                .min(super::share::beat_every(options.lease_ttl));
            if drain || stop.wait(retry, None).await {
                return Ok(Turn::Stop);
            }
            return Ok(Turn::Again);
        }
        self.record_circuit(store).await;
        if let Some(pause) = self.breaker.remaining(Instant::now()) {
            if drain || stop.wait(pause, None).await {
                return Ok(Turn::Stop);
            }
            return Ok(Turn::Again);
        }
        // Look at the wake-up counter before reading, so an append in between is not missed.
        wakeups.borrow_and_update();
        let claim = self.claim.clone().expect("claimed above");
        let worked = match self.step(bus, store, &claim, options, stop).await {
            Ok(worked) => worked,
            Err(Interrupt::LeaseLost) => {
                tracing::warn!(
                    handler = self.name,
                    segment = self.segment,
                    "lost the lease to another worker (this one stalled past it): the event in hand was not recorded and may be delivered again by the new holder"
                );
                self.claim = None;
                self.lost_claim();
                return Ok(Turn::Again);
            }
            Err(Interrupt::ViewConflict(conflict)) => {
                metrics::counter!("events_worker_view_conflicts_total", "handler" => self.name)
                    .increment(1);
                self.summary.view_conflicts += 1;
                self.serial = true;
                tracing::info!(
                    handler = self.name,
                    segment = self.segment,
                    error = %conflict,
                    "a view changed under the delivery; delivering the event again"
                );
                return Ok(Turn::Again);
            }
            Err(Interrupt::Store(e)) => return Err(e),
        };
        if worked {
            return Ok(Turn::Again);
        }
        if drain {
            return Ok(Turn::Stop);
        }
        let mut sleep = options.poll_interval;
        if let Some(at) = store.next_retry(&claim).await? {
            sleep = sleep.min(at.duration_since(SystemTime::now()).unwrap_or_default());
        }
        if stop.wait(sleep, Some(wakeups)).await {
            return Ok(Turn::Stop);
        }
        Ok(Turn::Again)
    }

    /// Takes or renews the claim; `false` when another worker holds it, or when this worker
    /// already holds its share of the handler's segments.
    async fn claim(
        &mut self,
        store: &Arc<dyn DurableStore>,
        options: &Options,
    ) -> Result<bool, StoreError> {
        let renewing = self.claim.is_some();
        if !renewing && !self.share.try_claim() {
            return Ok(false);
        }
        let claimed = self.claim_counted(store, options).await;
        if !renewing {
            match &claimed {
                Ok(true) => self.share.acquired(self.segment),
                _ => self.share.missed(),
            }
        }
        claimed
    }

    /// [`claim`](Self::claim) once the share has room for it.
    async fn claim_counted(
        &mut self,
        store: &Arc<dyn DurableStore>,
        options: &Options,
    ) -> Result<bool, StoreError> {
        let request = ClaimRequest {
            segment: SegmentId {
                handler: self.name,
                segment: self.segment,
            },
            owner: &options.owner,
            ttl: options.lease_ttl,
        };
        match store.claim(request).await? {
            Claimed::Acquired(claim) => {
                if self.claim.as_ref().is_some_and(|c| c.token != claim.token) {
                    tracing::warn!(
                        handler = self.name,
                        "the lease lapsed and was taken again: another worker may have delivered meanwhile"
                    );
                }
                self.lease_until = Instant::now() + options.lease_ttl;
                self.claim = Some(claim);
                self.ever_claimed = true;
                self.held_since.get_or_insert_with(SystemTime::now);
                Ok(true)
            }
            Claimed::HeldBy(lease) => {
                if self.last_holder.as_ref().map(|l| &l.owner) != Some(&lease.owner) {
                    // The membership loop says once when this worker stands by.
                    tracing::debug!(
                        handler = self.name,
                        segment = self.segment,
                        holder_host = lease.owner.host.as_str(),
                        holder_pid = lease.owner.pid,
                        "another worker holds this segment: {lease}; waiting for it to free"
                    );
                }
                if self.claim.take().is_some() {
                    self.lost_claim();
                }
                self.last_holder = Some(lease);
                Ok(false)
            }
        }
    }

    /// Delivers what is due; `true` if anything was done.
    async fn step(
        &mut self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        claim: &Claim,
        options: &Options,
        stop: &Stop,
    ) -> Result<bool, Interrupt> {
        let mut worked = self.send_commands(bus, store, options).await?;
        // Half open: one fresh event probes, alone, before any retry runs.
        let probing = self.breaker.half_open(Instant::now());
        let due = if probing {
            Vec::new()
        } else {
            store.due_pending(claim, options.batch).await?
        };
        for (pending, event) in due {
            let event = self.ordered(event);
            if self.must_pause(stop).await {
                return Ok(true);
            }
            let (outcome, staged) = self.deliver(bus, store, std::slice::from_ref(&event)).await;
            let record = decide(
                &outcome,
                pending.attempts + 1,
                &self.retry,
                event.position,
                SystemTime::now(),
            );
            let settlement = Settlement::Pending {
                id: pending.id,
                record: &record,
                views: &staged.views,
                timers: &staged.timers,
            };
            self.settle(store, claim, settlement, stop).await?;
            self.count(&record, &event);
            log_resolved(&pending, &outcome);
            worked = true;
        }
        let unread = Unread {
            claim,
            names: &self.names,
            limit: options.batch,
            whole: self.process.is_some(),
        };
        let events: Vec<_> = store
            .new_events(unread)
            .await?
            .into_iter()
            .map(|e| self.ordered(e))
            .collect();
        if events.is_empty() {
            if probing {
                tracing::info!(
                    handler = self.name,
                    segment = self.segment,
                    "circuit closed: the cool-down is over and no fresh event is there to probe with"
                );
                self.breaker.close();
                return Ok(true);
            }
            return Ok(worked);
        }
        let worked = self
            .deliver_step(bus, store, claim, events, probing, stop)
            .await?;
        self.send_commands(bus, store, options).await?;
        Ok(worked)
    }

    /// A process manager's event is keyed by its instance: `type/id` becomes `process/instance`
    /// for ordering and hold-back (and in its reactions' `Meta`). An event whose association id
    /// cannot be read keeps its aggregate: its reaction fails to decode it too, and it becomes a
    /// dead letter.
    fn ordered(&self, mut event: StoredEvent) -> StoredEvent {
        let Some(process) = self.process else {
            return event;
        };
        if let Ok(Some(instance)) = (process.key)(&event) {
            event.aggregate_type = process.name.to_owned();
            event.aggregate_id = instance;
        }
        event
    }

    /// Sends a process manager's stored commands (none for another handler, nothing while
    /// backing off after a failure); `true` if any row was done with.
    async fn send_commands(
        &mut self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        options: &Options,
    ) -> Result<bool, Interrupt> {
        let Some(process) = self.process else {
            return Ok(false);
        };
        if self.commands_due.is_some_and(|due| Instant::now() < due) {
            return Ok(false);
        }
        let sent =
            crate::process::dispatch_stored(bus, store, process.outbox, options.batch).await?;
        if sent.failed {
            self.command_failures += 1;
            let wait = command_backoff(self.command_failures);
            self.commands_due = Some(Instant::now() + wait);
            tracing::warn!(
                process = process.name,
                failures = self.command_failures,
                "a process manager's command failed {} in a row: its commands are sent again in {wait:?}",
                if self.command_failures == 1 { "once" } else { "times" }
            );
        } else {
            self.command_failures = 0;
            self.commands_due = None;
        }
        Ok(sent.done > 0)
    }

    /// Delivers the new events read by a step (one at a time after a view conflict, or when
    /// the first is the probe of a half-open circuit).
    async fn deliver_step(
        &mut self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        claim: &Claim,
        events: Vec<StoredEvent>,
        probing: bool,
        stop: &Stop,
    ) -> Result<bool, Interrupt> {
        // Read once per step, then kept up to date here: only the claim holder adds failures
        // for the segment; an operator's retry or drop meanwhile can only make the set stale
        // towards holding back, which stays in order.
        let mut hold = HoldBack::new(store.blocked_aggregates(claim).await?);
        if matches!(self.call, DurableShim::Batch(_)) {
            self.deliver_batches(bus, store, claim, events, &mut hold, stop)
                .await?;
            return Ok(true);
        }
        if !std::mem::take(&mut self.serial) && !probing {
            self.deliver_concurrently(bus, store, claim, events, &mut hold, stop)
                .await?;
            return Ok(true);
        }
        for event in events {
            if self.must_pause(stop).await {
                return Ok(true);
            }
            self.deliver_new(bus, store, claim, &event, &mut hold, stop)
                .await?;
        }
        Ok(true)
    }

    /// Delivers one new event (or holds it back) and moves the checkpoint past it.
    async fn deliver_new(
        &mut self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        claim: &Claim,
        event: &StoredEvent,
        hold: &mut HoldBack,
        stop: &Stop,
    ) -> Result<(), StoreError> {
        let (record, staged) = if hold.holds(event) {
            tracing::debug!(
                position = event.position,
                "held back behind an earlier failure of its aggregate"
            );
            (Record::Hold, Staged::default())
        } else {
            let (outcome, staged) = self.deliver(bus, store, std::slice::from_ref(event)).await;
            self.note_attempt(outcome.is_ok());
            let now = SystemTime::now();
            (
                decide(&outcome, 1, &self.retry, event.position, now),
                staged,
            )
        };
        let settlement = Settlement::New {
            event,
            record: &record,
            views: &staged.views,
            timers: &staged.timers,
        };
        self.settle(store, claim, settlement, stop).await?;
        hold.note(event, &record);
        self.count(&record, event);
        Ok(())
    }

    /// A batch handler takes runs of consecutive deliverable events in one call. A blocked
    /// event ends a run (it is held back in its place); a failed run is delivered again event
    /// by event, so a bad event gets its own retries and dead letter and the others go through.
    async fn deliver_batches(
        &mut self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        claim: &Claim,
        events: Vec<StoredEvent>,
        hold: &mut HoldBack,
        stop: &Stop,
    ) -> Result<(), StoreError> {
        let mut run: Vec<StoredEvent> = Vec::new();
        let mut rest = events.into_iter();
        loop {
            let next = rest.next();
            let ends_run = match &next {
                Some(event) => hold.holds(event),
                None => true,
            };
            if ends_run && !run.is_empty() {
                if self.must_pause(stop).await {
                    return Ok(());
                }
                let (outcome, staged) = self.deliver(bus, store, &run).await;
                self.note_attempt(outcome.is_ok());
                if outcome.is_ok() {
                    let last = run.last().map_or(0, |e| e.position);
                    let settlement = Settlement::Run {
                        last,
                        views: &staged.views,
                        timers: &staged.timers,
                    };
                    self.settle(store, claim, settlement, stop).await?;
                    self.summary.delivered += run.len() as u64;
                } else {
                    tracing::warn!(
                        events = run.len(),
                        "batch failed; delivering its events one by one"
                    );
                    for event in &run {
                        self.deliver_new(bus, store, claim, event, hold, stop)
                            .await?;
                    }
                }
                run.clear();
            }
            match next {
                Some(event) if ends_run => {
                    self.deliver_new(bus, store, claim, &event, hold, stop)
                        .await?
                }
                Some(event) => run.push(event),
                None => return Ok(()),
            }
        }
    }

    /// Records a delivery's outcome. A store that cannot write (a full disk, a lost
    /// connection) is tried again with back-off, with the same settlement: the handler has run
    /// and is not run again for it. Gives up when the claim is lost (another worker delivers
    /// the event again), when a stop is asked for (the next holder delivers it again), or in a
    /// drain (which fails loudly): each time with the store's error.
    async fn settle(
        &mut self,
        store: &Arc<dyn DurableStore>,
        claim: &Claim,
        settlement: Settlement<'_>,
        stop: &Stop,
    ) -> Result<(), StoreError> {
        let mut pause = RETRY_MIN;
        loop {
            match store.settle(claim, settlement).await {
                Err(e @ StoreError::Backend(_)) if !self.drain => {
                    self.store_failed(
                        &e,
                        pause,
                        "cannot record the delivery's outcome; trying again (the handler is not run again meanwhile)",
                    );
                    if stop.pause(pause).await {
                        tracing::warn!(
                            handler = self.name,
                            segment = self.segment,
                            "stopping before the delivery's outcome was recorded: the event will be delivered again"
                        );
                        return Err(e);
                    }
                    pause = (pause * 2).min(RETRY_MAX);
                }
                other => return other,
            }
        }
    }

    /// A store error the segment rides out: counted, and logged with what is tried again and
    /// after how long.
    fn store_failed(&self, error: &StoreError, retry_in: Duration, what: &str) {
        metrics::counter!("events_worker_store_errors_total", "handler" => self.name).increment(1);
        tracing::warn!(
            handler = self.name,
            segment = self.segment,
            error = %error,
            retry_in = ?retry_in,
            "{what}"
        );
    }

    /// Whether the claim needs renewing before more work.
    fn lease_due(&self) -> bool {
        self.lease_until.saturating_duration_since(Instant::now()) < self.renew_within
    }

    /// Called between two deliveries: yields to the runtime (so the other handlers of this
    /// worker, the signal handler and the run's timer get their turn even on a current-thread
    /// runtime), then says whether to stop working through the step before the next event: a
    /// stop was asked for, the circuit opened, or the claim must be renewed (back in the loop)
    /// so that a long step never outlives it.
    async fn must_pause(&self, stop: &Stop) -> bool {
        tokio::task::yield_now().await;
        stop.requested()
            || self.breaker.remaining(Instant::now()).is_some()
            || self.lease_due()
            || self.share.surplus(self.segment)
    }

    /// Gives the claim up because this worker holds more than its share (another worker
    /// joined): called between two deliveries, so nothing is in hand.
    async fn hand_over(&mut self, store: &Arc<dyn DurableStore>) -> Result<(), StoreError> {
        let Some(claim) = self.claim.take() else {
            return Ok(());
        };
        tracing::info!(
            handler = self.name,
            segment = self.segment,
            "handing segment {} over: this worker holds more than its share since another worker joined",
            self.segment
        );
        let released = store.release(&claim).await;
        self.lost_claim();
        released
    }

    /// The claim is gone (released, lost or lapsed): the share has room again and the time it
    /// was held goes into the summary.
    fn lost_claim(&mut self) {
        self.share.dropped(self.segment);
        // A new claim starts with no circuit recorded.
        self.recorded_circuit = None;
        if let Some(from) = self.held_since.take() {
            self.holdings.push(Holding {
                segment: self.segment,
                from,
                to: SystemTime::now(),
            });
        }
    }

    /// Runs the handler on `events` (holding one of the worker's permits) and returns its
    /// outcome with the view writes it staged (none when it failed: they are discarded with
    /// the attempt). The caller counts a first attempt in the breaker.
    async fn deliver(
        &self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        events: &[StoredEvent],
    ) -> (Outcome, Staged) {
        let permit = self.permits.acquire().await;
        let delivered = self.handler().deliver(bus, store, events).await;
        drop(permit);
        delivered
    }

    /// Counts a first attempt's result in the breaker, saying when the circuit opens (or a
    /// probe closes it).
    fn note_attempt(&mut self, ok: bool) {
        let was_open = self.breaker.half_open(Instant::now());
        if self.breaker.record(ok, Instant::now()) {
            metrics::counter!("events_worker_circuit_opened_total", "handler" => self.name)
                .increment(1);
            let (threshold, cooldown) = self.breaker.settings();
            tracing::warn!(
                handler = self.name,
                segment = self.segment,
                failures = self.breaker.failures_in_a_row(),
                threshold,
                cooldown_ms = cooldown.as_millis() as u64,
                "circuit open: handler paused; one fresh event probes after the cool-down"
            );
        } else if ok && was_open {
            tracing::info!(
                handler = self.name,
                segment = self.segment,
                "circuit closed: the probe succeeded"
            );
        }
    }

    /// Records the breaker's state in the store when it changed since last recorded, so
    /// `status` and the gauges show an open circuit from any process. A store error is logged
    /// and tried again on the next turn: delivery does not depend on it.
    async fn record_circuit(&mut self, store: &Arc<dyn DurableStore>) {
        let Some(claim) = &self.claim else { return };
        let open = self
            .breaker
            .remaining(Instant::now())
            .map(|left| OpenCircuit {
                segment: self.segment,
                until: SystemTime::now() + left,
                failures: self.breaker.failures_in_a_row(),
            });
        let state = open.as_ref().map(|o| o.failures);
        if state == self.recorded_circuit {
            return;
        }
        match store.record_circuit(claim, open.as_ref()).await {
            Ok(()) => self.recorded_circuit = state,
            Err(e) => tracing::warn!(
                handler = self.name,
                segment = self.segment,
                error = %e,
                "cannot record the circuit's state for operators; trying again on the next turn"
            ),
        }
    }

    /// What a delivery needs of the subscription, to run as a task of its own.
    fn handler(&self) -> Handler {
        Handler {
            name: self.name,
            segment: self.segment,
            event: self.event,
            variants: self.variants,
            call: self.call,
            index: self.index,
        }
    }

    /// Delivers new events with up to the worker's concurrency in flight, each a task of its
    /// own holding a permit. An event starts once no event of its aggregate is in flight (its
    /// predecessor's outcome is known, so hold-back applies as one at a time), and the
    /// outcomes are recorded in log order as they become a contiguous run (a run of successes
    /// with one checkpoint move), so the checkpoint never passes an unsettled event; nothing
    /// starts more than the concurrency past the first unsettled event (what a crash delivers
    /// again). On a stop, an open circuit, a lease to renew or a segment to hand over, nothing
    /// new starts beyond the last event started; those before it are finished and recorded
    /// (none is left handled but unrecorded), the rest are read again on the next step.
    async fn deliver_concurrently(
        &mut self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        claim: &Claim,
        events: Vec<StoredEvent>,
        hold: &mut HoldBack,
        stop: &Stop,
    ) -> Result<(), Interrupt> {
        let handler = self.handler();
        let keys: Vec<String> = events.iter().map(aggregate_key).collect();
        let mut outcomes: Vec<Option<(Record, Staged)>> = events.iter().map(|_| None).collect();
        let mut started = vec![false; events.len()];
        let mut in_flight: HashSet<&str> = HashSet::new();
        // Aggregates with a finished but unrecorded delivery that wrote views: the next event
        // of the aggregate would read the view before that write commits, and conflict.
        let mut unrecorded_views: HashSet<&str> = HashSet::new();
        let mut running = JoinSet::new();
        let mut tasks = HashMap::new();
        let (mut settled, mut first_waiting, mut end) = (0, 0, events.len());
        let mut pausing = false;
        loop {
            if !pausing && self.must_pause(stop).await {
                pausing = true;
                end = started.iter().rposition(|s| *s).map_or(0, |i| i + 1);
            }
            // Start what may start, in log order.
            let mut waiting_for_permit = false;
            let mut waiting_for_views = false;
            let mut passed: HashSet<&str> = HashSet::new();
            for i in first_waiting..end.min(settled + self.window) {
                let key = keys[i].as_str();
                if started[i] {
                    continue;
                }
                if in_flight.contains(key) || passed.contains(key) {
                    passed.insert(key);
                    continue;
                }
                if unrecorded_views.contains(key) {
                    waiting_for_views = true;
                    passed.insert(key);
                    continue;
                }
                if hold.holds(&events[i]) {
                    tracing::debug!(
                        position = events[i].position,
                        "held back behind an earlier failure of its aggregate"
                    );
                    started[i] = true;
                    outcomes[i] = Some((Record::Hold, Staged::default()));
                    continue;
                }
                let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                    waiting_for_permit = true;
                    break;
                };
                started[i] = true;
                in_flight.insert(key);
                let (bus, store, event) = (bus.clone(), Arc::clone(store), events[i].clone());
                let task = running.spawn(
                    async move {
                        let delivered = handler
                            .deliver(&bus, &store, std::slice::from_ref(&event))
                            .await;
                        // The permit goes back once the outcome is noted (the breaker too).
                        (delivered, permit)
                    }
                    .in_current_span(),
                );
                tasks.insert(task.id(), i);
            }
            while first_waiting < end && started[first_waiting] {
                first_waiting += 1;
            }
            // Record what is contiguous from the checkpoint once nothing more may start
            // without it (the window is full, everything is started, or an event waits for
            // its aggregate's views) or nothing runs: a run of successes is one transaction,
            // not one per event.
            if first_waiting >= end.min(settled + self.window)
                || running.is_empty()
                || waiting_for_views
            {
                let before = settled;
                settled = self
                    .settle_ready(store, claim, &events, &mut outcomes, settled, stop)
                    .await?;
                unrecorded_views = (settled..events.len())
                    .filter(|&i| {
                        outcomes[i]
                            .as_ref()
                            .is_some_and(|(_, s)| !s.views.is_empty())
                    })
                    .map(|i| keys[i].as_str())
                    .collect();
                if settled >= end && running.is_empty() {
                    return Ok(());
                }
                if settled > before {
                    // The window moved: start what it lets in first.
                    continue;
                }
            }
            if running.is_empty() {
                // Every permit is taken by the worker's other segments: wait for one.
                drop(self.permits.acquire().await);
                continue;
            }
            let joined = if waiting_for_permit {
                tokio::select! {
                    joined = running.join_next_with_id() => joined,
                    permit = self.permits.acquire() => {
                        drop(permit);
                        continue;
                    }
                }
            } else {
                running.join_next_with_id().await
            };
            let Some(mut joined) = joined else { continue };
            // Take every task that finished meanwhile too, so their outcomes settle together.
            loop {
                let (i, (outcome, staged), permit) = match joined {
                    Ok((task, (delivered, permit))) => (tasks[&task], delivered, Some(permit)),
                    // Handlers' panics are caught inside the task: this is the task itself.
                    Err(e) => (
                        tasks[&e.id()],
                        (
                            Err(Box::new(FailureCause::Panic(e.to_string()))),
                            Staged::default(),
                        ),
                        None,
                    ),
                };
                self.note_attempt(outcome.is_ok());
                drop(permit);
                let now = SystemTime::now();
                let record = decide(&outcome, 1, &self.retry, events[i].position, now);
                hold.note(&events[i], &record);
                in_flight.remove(keys[i].as_str());
                if !staged.views.is_empty() {
                    unrecorded_views.insert(keys[i].as_str());
                }
                outcomes[i] = Some((record, staged));
                match running.try_join_next_with_id() {
                    Some(next) => joined = next,
                    None => break,
                }
            }
        }
    }

    /// Records the outcomes known from `settled` on, in log order, up to the first event
    /// still in flight: a run of successes with one checkpoint move (and their staged views),
    /// any other outcome with its own. Returns where the unsettled events begin.
    async fn settle_ready(
        &mut self,
        store: &Arc<dyn DurableStore>,
        claim: &Claim,
        events: &[StoredEvent],
        outcomes: &mut [Option<(Record, Staged)>],
        mut settled: usize,
        stop: &Stop,
    ) -> Result<usize, Interrupt> {
        while let Some((record, _)) = outcomes.get(settled).and_then(Option::as_ref) {
            if *record != Record::Done {
                let (record, staged) = outcomes[settled].take().expect("known");
                let event = &events[settled];
                let settlement = Settlement::New {
                    event,
                    record: &record,
                    views: &staged.views,
                    timers: &staged.timers,
                };
                self.settle(store, claim, settlement, stop).await?;
                self.count(&record, event);
                settled += 1;
                continue;
            }
            let mut run = settled;
            let mut staged = Staged::default();
            while let Some((Record::Done, _)) = outcomes.get(run).and_then(Option::as_ref) {
                let (_, later) = outcomes[run].take().expect("known");
                staged.extend(later);
                run += 1;
            }
            let last = events[run - 1].position;
            let settlement = Settlement::Run {
                last,
                views: &staged.views,
                timers: &staged.timers,
            };
            self.settle(store, claim, settlement, stop).await?;
            self.summary.delivered += (run - settled) as u64;
            settled = run;
        }
        Ok(settled)
    }

    fn count(&mut self, record: &Record, event: &StoredEvent) {
        let s = &mut self.summary;
        match record {
            Record::Done => s.delivered += 1,
            Record::Retry { .. } => s.failed += 1,
            Record::Dead { attempts, error } => {
                s.failed += 1;
                s.dead_lettered += 1;
                tracing::error!(
                    handler = self.name,
                    position = event.position,
                    aggregate = aggregate_key(event),
                    attempts,
                    error = error.as_str(),
                    "event dead-lettered"
                );
            }
            Record::Hold => s.held += 1,
        }
    }
}

/// The segment's breaker: the worker's setting, else the handler's, else 5 failures and 30 s.
fn breaker(options: &Options, policy: &RetryPolicy) -> Breaker {
    let threshold = options
        .breaker_threshold
        .or(policy.breaker_after)
        .unwrap_or(5);
    let cooldown = options
        .breaker_cooldown
        .or(policy.breaker_cooldown_ms.map(Duration::from_millis))
        .unwrap_or(Duration::from_secs(30));
    Breaker::new(threshold, cooldown)
}

fn log_resolved(pending: &PendingFailure, outcome: &Outcome) {
    if outcome.is_ok() {
        tracing::info!(
            position = pending.position,
            aggregate = pending.aggregate.as_str(),
            "pending event delivered"
        );
    }
}

/// What a delivery needs of its subscription: copied into each task in flight.
#[derive(Clone, Copy)]
struct Handler {
    name: &'static str,
    segment: u32,
    event: &'static EventInfo,
    variants: &'static [Variant],
    call: DurableShim,
    index: usize,
}

impl Handler {
    /// The payload the handler's shim decodes: a set variant's fields wrapped as serde reads
    /// the enum (as the aggregate reads it), any other event upcast to the current version.
    fn payload(&self, event: &StoredEvent) -> Result<serde_json::Value, crate::error::BoxError> {
        match self.variants.iter().find(|v| v.name == event.name) {
            Some(variant) => Ok(tagged(variant, event.payload.clone())),
            None => self.event.upcast(event.version, event.payload.clone()),
        }
    }

    /// Runs the handler on `events` and returns its outcome with the view writes it staged
    /// (none when it failed: they are discarded with the attempt).
    async fn deliver(
        self,
        bus: &Bus,
        store: &Arc<dyn DurableStore>,
        events: &[StoredEvent],
    ) -> (Outcome, Staged) {
        let Some(event) = events.last() else {
            return (Ok(()), Staged::default());
        };
        let meta = match self.variants.iter().find(|v| v.name == event.name) {
            Some(variant) => event.envelope(variant.name, variant.version),
            None => event.envelope(self.event.name(), self.event.version()),
        };
        let receiving = crate::trace::receive(self.name, self.segment, events.len(), &meta);
        let payloads = events.iter().map(|e| self.payload(e)).collect();
        let to = DurableTarget {
            handler: self.name,
            event: self.event.name(),
            index: self.index,
            call: self.call,
        };
        let staging = Staging::new(Arc::clone(store));
        let delivery = bus.deliver_stored(to, meta, payloads).instrument(receiving);
        let outcome = staging.scope(delivery).await;
        let mut staged = staging.take_all();
        if outcome.is_err() && staged.len() > 0 {
            tracing::debug!(
                handler = self.name,
                views = staged.views.len(),
                timers = staged.timers.len(),
                "the delivery failed: its staged view and timer writes are discarded"
            );
            staged = Staged::default();
        }
        (outcome, staged)
    }
}

/// How long to wait after `failures` failed sends in a row: 250 ms doubled each time, at most
/// [`MAX_COMMAND_BACKOFF`].
fn command_backoff(failures: u32) -> Duration {
    let doubled =
        Duration::from_millis(250).saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_COMMAND_BACKOFF)
}
