//! One durable handler's delivery loop.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::queries::{self, aggregate_key, PendingFailure, Settle};
use super::{HandlerSummary, Options};
use crate::bus::{Clock, Target};
use crate::catalog::DurableShim;
use crate::catalog::{Catalog, EventInfo, HandlerInfo};
use crate::extract::Context;
use crate::handler::{Outcome, RetryPolicy};
use crate::meta::LazyMeta;
use crate::report::FailureCause;
use crate::store::{SqliteStore, StoreError, StoredEvent};
use crate::Bus;

pub(crate) struct Subscription {
    name: &'static str,
    event: &'static EventInfo,
    call: DurableShim,
    retry: RetryPolicy,
    index: usize,
    breaker: Breaker,
    summary: HandlerSummary,
    /// Until when this worker's lease on the handler is known to hold.
    lease_until: Instant,
    /// Renew the lease once less than this is left of it.
    renew_within: Duration,
}

/// Pauses a handler after `threshold` failures in a row; after the cool-down one event
/// probes: a success closes the circuit, a failure opens it again.
struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures_in_a_row: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    fn record(&mut self, ok: bool, handler: &str) {
        if ok {
            self.failures_in_a_row = 0;
            self.open_until = None;
            return;
        }
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= self.threshold {
            self.open_until = Some(Instant::now() + self.cooldown);
            tracing::warn!(
                handler,
                failures = self.failures_in_a_row,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "circuit open: handler paused"
            );
        }
    }

    /// How long the handler must still wait, if its circuit is open.
    fn remaining(&self) -> Option<Duration> {
        self.open_until
            .and_then(|t| t.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }
}

impl Subscription {
    pub(crate) fn new(handler: &HandlerInfo, catalog: &'static Catalog, options: &Options) -> Self {
        let (call, retry) = handler.durable.expect("durable handler");
        let event = catalog
            .event(handler.event_name())
            .expect("a handler's event is in the catalog");
        Self {
            name: handler.name(),
            event,
            call,
            retry,
            index: handler.index,
            breaker: Breaker {
                threshold: options.breaker_threshold,
                cooldown: options.breaker_cooldown,
                failures_in_a_row: 0,
                open_until: None,
            },
            summary: HandlerSummary::default(),
            lease_until: Instant::now(),
            renew_within: options.lease_ttl / 2,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) async fn run(
        mut self,
        bus: &Bus,
        store: &SqliteStore,
        options: &Options,
        mut stopped: watch::Receiver<bool>,
        drain: bool,
    ) -> Result<(String, HandlerSummary), StoreError> {
        loop {
            if *stopped.borrow() {
                break;
            }
            // Renew the lease when half of it is used up.
            if self.lease_due() {
                if queries::acquire_lease(store, self.name, &options.owner, options.lease_ttl)? {
                    self.lease_until = Instant::now() + options.lease_ttl;
                } else {
                    tracing::debug!("lease held by another worker; waiting");
                    if drain || wait(&mut stopped, options.poll_interval, None).await {
                        break;
                    }
                    continue;
                }
            }
            if let Some(pause) = self.breaker.remaining() {
                if drain || wait(&mut stopped, pause, None).await {
                    break;
                }
                continue;
            }
            // Listen before looking, so an append between the two is not missed.
            let appended = store.appended().notified();
            tokio::pin!(appended);
            appended.as_mut().enable();

            let worked = self.step(bus, store, options, &stopped).await?;
            if worked {
                continue;
            }
            if drain {
                break;
            }
            let mut sleep = options.poll_interval;
            if let Some(at) = queries::next_retry(store, self.name)? {
                sleep = sleep.min(at.duration_since(SystemTime::now()).unwrap_or_default());
            }
            if wait(&mut stopped, sleep, Some(appended)).await {
                break;
            }
        }
        queries::release_lease(store, self.name, &options.owner)?;
        Ok((self.name.to_owned(), self.summary))
    }

    /// Delivers what is due; `true` if anything was done.
    async fn step(
        &mut self,
        bus: &Bus,
        store: &SqliteStore,
        options: &Options,
        stopped: &watch::Receiver<bool>,
    ) -> Result<bool, StoreError> {
        let mut worked = false;
        for (pending, event) in queries::due_heads(store, self.name, options.batch)? {
            if self.must_pause(stopped) {
                return Ok(true);
            }
            let outcome = self.deliver(bus, std::slice::from_ref(&event)).await;
            let settle = self.settle(&outcome, pending.attempts + 1, &event);
            self.count(&settle, &event);
            queries::settle_pending(store, pending.id, settle_ref(&settle))?;
            log_resolved(&pending, &outcome);
            worked = true;
        }
        let events = queries::new_events(store, self.name, self.event.name(), options.batch)?;
        if events.is_empty() {
            return Ok(worked);
        }
        // Read once per step, then kept up to date here: only this worker (the lease holder)
        // adds failures for the handler; an operator's retry or drop meanwhile can only make
        // the set stale towards holding back, which stays in order.
        let mut blocked = queries::blocked_aggregates(store, self.name)?;
        if matches!(self.call, DurableShim::Batch(_)) {
            self.deliver_batches(bus, store, events, &mut blocked, stopped)
                .await?;
            return Ok(true);
        }
        for event in events {
            if self.must_pause(stopped) {
                return Ok(true);
            }
            self.deliver_new(bus, store, &event, &mut blocked).await?;
        }
        Ok(true)
    }

    /// Delivers one new event (or holds it back) and moves the checkpoint past it.
    async fn deliver_new(
        &mut self,
        bus: &Bus,
        store: &SqliteStore,
        event: &StoredEvent,
        blocked: &mut HashSet<String>,
    ) -> Result<(), StoreError> {
        let key = aggregate_key(event);
        let settle = if blocked.contains(&key) {
            tracing::debug!(
                position = event.position,
                "held back behind an earlier failure of its aggregate"
            );
            Owned::Hold
        } else {
            let outcome = self.deliver(bus, std::slice::from_ref(event)).await;
            self.settle(&outcome, 1, event)
        };
        self.count(&settle, event);
        if !matches!(settle, Owned::Done) {
            blocked.insert(key);
        }
        queries::settle_new(store, self.name, event, settle_ref(&settle))
    }

    /// A batch handler takes runs of consecutive deliverable events in one call. A blocked
    /// event ends a run (it is held back in its place); a failed run is delivered again event
    /// by event, so a bad event gets its own retries and dead letter and the others go through.
    async fn deliver_batches(
        &mut self,
        bus: &Bus,
        store: &SqliteStore,
        events: Vec<StoredEvent>,
        blocked: &mut HashSet<String>,
        stopped: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let mut run: Vec<StoredEvent> = Vec::new();
        let mut rest = events.into_iter();
        loop {
            let next = rest.next();
            let ends_run = match &next {
                Some(event) => blocked.contains(&aggregate_key(event)),
                None => true,
            };
            if ends_run && !run.is_empty() {
                if self.must_pause(stopped) {
                    return Ok(());
                }
                let outcome = self.deliver(bus, &run).await;
                if outcome.is_ok() {
                    queries::settle_run(store, self.name, run.last().map_or(0, |e| e.position))?;
                    self.summary.delivered += run.len() as u64;
                } else {
                    tracing::warn!(
                        events = run.len(),
                        "batch failed; delivering its events one by one"
                    );
                    for event in &run {
                        self.deliver_new(bus, store, event, blocked).await?;
                    }
                }
                run.clear();
            }
            match next {
                Some(event) if ends_run => self.deliver_new(bus, store, &event, blocked).await?,
                Some(event) => run.push(event),
                None => return Ok(()),
            }
        }
    }

    /// Whether the lease needs renewing before more work.
    fn lease_due(&self) -> bool {
        self.lease_until.saturating_duration_since(Instant::now()) < self.renew_within
    }

    /// Whether to stop working through a step before the next event: a stop was asked for,
    /// the circuit opened, or the lease must be renewed (back in the loop) so that a long
    /// step never outlives it.
    fn must_pause(&self, stopped: &watch::Receiver<bool>) -> bool {
        *stopped.borrow() || self.breaker.remaining().is_some() || self.lease_due()
    }

    async fn deliver(&mut self, bus: &Bus, events: &[StoredEvent]) -> Outcome {
        let Some(event) = events.last() else {
            return Ok(());
        };
        let meta = event.meta_named(self.event.name(), self.event.version());
        let lazy = LazyMeta::given(meta);
        let cx = Context {
            bus,
            meta: &lazy,
            depth: 0,
        };
        let target = Target {
            event: self.event.name(),
            handler: self.name,
            index: self.index,
        };
        let payloads: Result<Vec<_>, _> = events
            .iter()
            .map(|e| self.event.upcast(e.version, e.payload.clone()))
            .collect();
        // Durable handlers do I/O: their durations are always worth the clock reads.
        let mut clock = Clock::start(true);
        let outcome = match (payloads, self.call) {
            (Ok(payloads), DurableShim::One(call)) => {
                bus.run_async(target, &cx, &mut clock, call(&payloads[0], &cx))
                    .await
            }
            (Ok(payloads), DurableShim::Batch(call)) => {
                bus.run_async(target, &cx, &mut clock, call(&payloads, &cx))
                    .await
            }
            (Err(e), _) => Err(Box::new(FailureCause::Decode(e.to_string()))),
        };
        self.breaker.record(outcome.is_ok(), self.name);
        outcome
    }

    /// What to record after attempt number `attempt` of `event`.
    fn settle(&self, outcome: &Outcome, attempt: u32, event: &StoredEvent) -> Owned {
        match outcome {
            Ok(()) => Owned::Done,
            Err(cause) if matches!(**cause, FailureCause::Decode(_)) => Owned::Dead {
                attempts: attempt,
                error: cause.to_string(),
            },
            Err(cause) if attempt >= self.retry.max_attempts => Owned::Dead {
                attempts: attempt,
                error: cause.to_string(),
            },
            Err(cause) => Owned::Retry {
                attempts: attempt,
                at: SystemTime::now() + jitter(self.retry.backoff(attempt), event.position),
                error: cause.to_string(),
            },
        }
    }

    fn count(&mut self, settle: &Owned, event: &StoredEvent) {
        let s = &mut self.summary;
        match settle {
            Owned::Done => s.delivered += 1,
            Owned::Retry { .. } => s.failed += 1,
            Owned::Dead { attempts, error } => {
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
            Owned::Hold => s.held += 1,
        }
    }
}

/// `Settle` with owned error text.
enum Owned {
    Done,
    Retry {
        attempts: u32,
        at: SystemTime,
        error: String,
    },
    Dead {
        attempts: u32,
        error: String,
    },
    Hold,
}

fn settle_ref(owned: &Owned) -> Settle<'_> {
    match owned {
        Owned::Done => Settle::Done,
        Owned::Retry {
            attempts,
            at,
            error,
        } => Settle::Retry {
            attempts: *attempts,
            at: *at,
            error,
        },
        Owned::Dead { attempts, error } => Settle::Dead {
            attempts: *attempts,
            error,
        },
        Owned::Hold => Settle::Hold,
    }
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

/// A random 50 to 100% of `delay`, so retries of many events do not arrive in lockstep.
fn jitter(delay: Duration, salt: u64) -> Duration {
    let random = RandomState::new().hash_one((salt, SystemTime::now()));
    let fraction = 0.5 + (random % 1_000) as f64 / 2_000.0;
    delay.mul_f64(fraction)
}

/// Waits for `timeout`, a stop, or the wake-up; `true` when stopped.
async fn wait(
    stopped: &mut watch::Receiver<bool>,
    timeout: Duration,
    wake: Option<std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>>,
) -> bool {
    let woken = async {
        match wake {
            Some(w) => w.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stopped.changed() => {}
        () = tokio::time::sleep(timeout) => {}
        () = woken => {}
    }
    *stopped.borrow()
}
