//! The worker: delivers stored events to durable handlers (`#[event_handler(durable)]`).
//!
//! Each durable handler is a subscription with its own checkpoint in the store. A worker runs
//! one, several or all of them, each in its own task:
//!
//! 1. events pending for the handler come first: a retry whose time has come, or an event held
//!    back behind an aggregate's earlier failure once that failure is resolved;
//! 2. then new events of its type after its checkpoint, in log order, up to
//!    [`concurrency`](Worker::concurrency) of them in flight at once across the worker (of
//!    different aggregates: an aggregate's events reach the handler one at a time, in order).
//!    The outcomes are recorded in log order, a run of successes with one checkpoint move, so
//!    the checkpoint only passes settled events and a crash redelivers at most the events in
//!    hand.
//!
//! A failed event is retried with exponential back-off and jitter, then becomes a dead letter.
//! While an aggregate has a retrying or dead event for a handler, that handler's later events
//! of the same aggregate are held back: per-aggregate order is never broken. Other aggregates
//! go on. After several failures in a row a handler's circuit opens and it pauses for a
//! cool-down, then probes with one event.
//!
//! Several worker processes can share a store: a claim (a lease with a fencing token) per
//! handler segment makes sure one worker delivers it at a time; a crashed worker's lease
//! expires after `lease_ttl`, and a worker that stalled past its lease cannot commit once
//! another took over. The live workers of a handler beat in the store's member list and each
//! takes at most `ceil(segments / live workers)` of its segments
//! ([`fair_share`](crate::store::durable::fair_share)): a worker holding more hands the surplus
//! over between two deliveries once another joins, and a worker left with no segment stands by
//! until one frees. A settle the store cannot write is tried again with back-off, without
//! running the handler again. The worker runs on any [`DurableStore`]; the decisions it
//! applies live in the backend-neutral engine.
//!
//! Whatever the runtime flavour, a worker checks for a stop (signal, `max_runtime`) between
//! every two deliveries and yields to the runtime there, so the handlers of one worker take
//! turns and blocking handlers cannot hold a stop off for more than the events in flight.

mod engine;
pub mod metrics;
mod share;
mod subscription;
mod timers;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::bus::Bus;
use crate::catalog::catalog;
use crate::handler::HandlerKind;
use crate::stop::Stop;
use crate::store::durable::{DurableStore, IntoDurableStore, Lease, Owner};
use crate::store::StoreError;

pub use crate::stop::shutdown_signal;
pub use crate::store::durable::{FailureStatus, HandlerStatus, PendingFailure};
use subscription::Subscription;
pub use timers::{TimerSummary, Timers};

/// Delivers stored events to durable handlers until stopped.
///
/// ```no_run
/// # async fn run(bus: events::Bus, store: events::store::SqliteStore) -> Result<(), events::worker::WorkerError> {
/// use std::time::Duration;
/// use events::worker::Worker;
///
/// // One process per handler, restarted by a supervisor every ten minutes:
/// let summary = Worker::new(&bus, &store)
///     .handlers(["cards.index_card"])
///     .max_runtime(Duration::from_secs(600))
///     .run() // until SIGINT/SIGTERM or the time limit
///     .await?;
/// println!("{summary}");
/// # Ok(()) }
/// ```
#[must_use]
pub struct Worker {
    bus: Bus,
    store: Arc<dyn DurableStore>,
    handlers: Option<Vec<String>>,
    options: Options,
}

#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) max_runtime: Option<Duration>,
    pub(crate) poll_interval: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) batch: usize,
    /// The breaker set for the whole worker, over each handler's own (`None`: the handler's
    /// setting, else the default).
    pub(crate) breaker_threshold: Option<u32>,
    pub(crate) breaker_cooldown: Option<Duration>,
    pub(crate) owner: Owner,
    /// The events this worker may have in flight at once, across all its handlers and
    /// segments: one permit per delivery.
    pub(crate) permits: Arc<Semaphore>,
    /// How many permits there are: also how far past a segment's first unsettled event its
    /// deliveries may start, which bounds what a crash delivers again.
    pub(crate) concurrency: usize,
}

/// How many events a worker keeps in flight at once by default ([`Worker::concurrency`]).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The worker could not start, or its store failed. `Debug` shows the same readable message
/// as `Display`, so `fn main() -> Result<(), WorkerError>` and `.expect(..)` print it.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The handlers asked for are not all durable handlers of this program.
    #[error("the worker cannot start: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl std::fmt::Debug for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// What a worker run did, per handler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Per handler name.
    pub handlers: BTreeMap<String, HandlerSummary>,
    /// Handlers of which this worker held no segment the whole run (other workers held them:
    /// it stood by), with the last lease of another worker it saw, if it tried.
    pub held_elsewhere: BTreeMap<String, Option<Lease>>,
    /// Per handler name: which segments this worker held, and when, in the order it let them
    /// go.
    pub holdings: BTreeMap<String, Vec<Holding>>,
    /// When the run started (the times of `holdings` are shown from there).
    pub started: Option<SystemTime>,
    /// The timers this worker fired, and those overdue when it started.
    pub timers: TimerSummary,
}

/// A segment of a handler that a worker held for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holding {
    /// The segment.
    pub segment: u32,
    /// When the worker took it.
    pub from: SystemTime,
    /// When it let it go (handed over, lost, or at the end of the run).
    pub to: SystemTime,
}

impl Summary {
    fn add(&mut self, handler: &str, s: HandlerSummary) {
        let total = self.handlers.entry(handler.to_owned()).or_default();
        total.delivered += s.delivered;
        total.failed += s.failed;
        total.dead_lettered += s.dead_lettered;
        total.held += s.held;
        total.view_conflicts += s.view_conflicts;
    }
}

/// What a worker run did for one handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandlerSummary {
    /// Events handled successfully (first deliveries and retries).
    pub delivered: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Events that became dead letters.
    pub dead_lettered: u64,
    /// Events held back behind an earlier failure of their aggregate.
    pub held: u64,
    /// Deliveries whose staged view writes found a view changed by another worker: nothing
    /// was committed and the event was delivered again (not a failure).
    pub view_conflicts: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.timers;
        if t.fired > 0 || t.overdue_at_start > 0 {
            write!(f, "timers: {} fired", t.fired)?;
            if let Some(late) = t.oldest_overdue_by {
                write!(
                    f,
                    " ({} overdue when this worker started, the oldest due {:.1} s before)",
                    t.overdue_at_start,
                    late.as_secs_f64()
                )?;
            }
            writeln!(f)?;
        }
        for (name, s) in &self.handlers {
            match self.held_elsewhere.get(name) {
                Some(Some(lease)) => writeln!(
                    f,
                    "{name}: not delivered by this worker: another worker holds it: {lease}; this one stood by"
                )?,
                Some(None) => writeln!(
                    f,
                    "{name}: not delivered by this worker: other workers held its segments; this one stood by"
                )?,
                None => {
                    write!(
                        f,
                        "{name}: {} delivered, {} failed attempts, {} dead-lettered, {} held back",
                        s.delivered, s.failed, s.dead_lettered, s.held
                    )?;
                    if s.view_conflicts > 0 {
                        write!(
                            f,
                            ", {} redelivered after a view conflict",
                            s.view_conflicts
                        )?;
                    }
                    if let Some(holdings) = self.holdings.get(name) {
                        write!(f, "; {}", held_when(holdings, self.started))?;
                    }
                    writeln!(f)?
                }
            }
        }
        Ok(())
    }
}

/// `held segments 0,1 from 0.0s to 12.3s, 2 from 4.1s to 12.3s`: the holdings that span the
/// same time on one entry, times from the run's start.
fn held_when(holdings: &[Holding], started: Option<SystemTime>) -> String {
    if holdings.is_empty() {
        return "held no segment".to_owned();
    }
    let start = started.unwrap_or_else(|| holdings.iter().map(|h| h.from).min().expect("some"));
    let at = |t: SystemTime| {
        format!(
            "{:.1}s",
            t.duration_since(start).unwrap_or_default().as_secs_f64()
        )
    };
    let mut spans: Vec<(String, String, Vec<u32>)> = Vec::new();
    let mut sorted = holdings.to_vec();
    sorted.sort_by_key(|h| (h.from, h.segment));
    for h in sorted {
        let (from, to) = (at(h.from), at(h.to));
        match spans.iter_mut().find(|(f, t, _)| *f == from && *t == to) {
            Some((.., segments)) => segments.push(h.segment),
            None => spans.push((from, to, vec![h.segment])),
        }
    }
    let spans: Vec<String> = spans
        .into_iter()
        .map(|(from, to, mut segments)| {
            segments.sort_unstable();
            format!("{} from {from} to {to}", share::list(&segments))
        })
        .collect();
    let noun = if holdings.len() == 1 {
        "segment"
    } else {
        "segments"
    };
    format!("held {noun} {}", spans.join(", "))
}

impl Worker {
    /// A worker for every durable handler of the program, on `store` (a backend by reference,
    /// or the `Arc<dyn DurableStore>` of [`connect`](crate::store::connect)).
    pub fn new(bus: &Bus, store: impl IntoDurableStore) -> Self {
        Self {
            bus: bus.clone(),
            store: store.into_durable_store(),
            handlers: None,
            options: Options {
                max_runtime: None,
                poll_interval: Duration::from_millis(500),
                lease_ttl: Duration::from_secs(15),
                batch: 100,
                breaker_threshold: None,
                breaker_cooldown: None,
                owner: Owner::current(),
                permits: Arc::new(Semaphore::new(DEFAULT_CONCURRENCY)),
                concurrency: DEFAULT_CONCURRENCY,
            },
        }
    }

    /// Runs only these handlers (by name).
    pub fn handlers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.handlers = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Stops cleanly after this long, so a supervisor restarts a fresh process.
    pub fn max_runtime(mut self, limit: Duration) -> Self {
        self.options.max_runtime = Some(limit);
        self
    }

    /// How often to look for events written by other processes (default 500 ms). Events
    /// appended through a store of this process wake the worker at once.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.options.poll_interval = every;
        self
    }

    /// How long a handler's lease outlives a worker that stopped renewing it (default 15 s).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.options.lease_ttl = ttl;
        self
    }

    /// How many events this worker keeps in flight at once, across all its handlers and
    /// segments (default [`DEFAULT_CONCURRENCY`], 16; at least 1), whatever the number of
    /// segments: a handler that waits 200 ms on a remote API runs up to `n` calls at once.
    ///
    /// The events in flight are of different aggregates: an aggregate's next event starts
    /// only once the outcome of its previous one is known, so each aggregate's events reach
    /// the handler one at a time and in order, and an event that failed holds its
    /// aggregate's later ones back as with one event at a time. The checkpoint of a segment
    /// moves only past events that are all settled (the outcomes are recorded in log order,
    /// a run of successes in one transaction), and a segment's deliveries start at most `n`
    /// events past its first unsettled one: a crash delivers again at most `n` events per
    /// segment the worker held (those in flight or not yet recorded), each aggregate's in
    /// their order. Retries of pending events and batch handlers
    /// run one call at a time per segment (each still takes one of the `n`).
    ///
    /// Each event in flight is a task on the worker's runtime: an async handler that awaits
    /// (a network call, `tokio::time::sleep`) lets the others run. A sync handler, or an
    /// async one that blocks the thread, holds a runtime thread while it runs (on a
    /// current-thread runtime, every other event of the worker waits for it): make a handler
    /// that waits on I/O async, or move its blocking part to `tokio::task::spawn_blocking`
    /// and await that.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.options.concurrency = n.max(1);
        self.options.permits = Arc::new(Semaphore::new(self.options.concurrency));
        self
    }

    /// How many events a segment reads per poll (default 100, at least 1): the new events
    /// after its checkpoint, and the pending retries that are due. A batch handler takes at
    /// most this many in one call. Reading more per poll costs fewer round trips; what a crash
    /// delivers again stays bounded by [`concurrency`](Self::concurrency).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.options.batch = n.max(1);
        self
    }

    /// This worker's identity on its claims (default: this host and process, a fresh id).
    pub fn owner(mut self, owner: Owner) -> Self {
        self.options.owner = owner;
        self
    }

    /// Pause a handler's segment for `cooldown` after `threshold` fresh events failed in a
    /// row, for every handler this worker runs, over the handlers' own `breaker_after` and
    /// `breaker_cooldown_ms` (without either: 5 and 30 s).
    ///
    /// Only first attempts count: retries of events that already failed do not, so a few
    /// poison events (retried, then dead-lettered, holding back only their own aggregates)
    /// never open the circuit while the healthy events around them go through. Nothing new
    /// starts once the circuit is open; the events already in flight then (up to
    /// [`concurrency`](Self::concurrency)) finish and are recorded. After the cool-down one
    /// fresh event probes, alone: a success closes the circuit, a failure opens it again.
    /// An open circuit is logged, counted (`events_worker_circuit_opened_total`), and
    /// recorded in the store for `status`, `status --json` and the
    /// `events_durable_circuits_open` gauge.
    pub fn circuit_breaker(self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker(Some(threshold), Some(cooldown))
    }

    /// [`circuit_breaker`](Self::circuit_breaker) with either setting left to the handlers
    /// (as `process --breaker-after` and `--breaker-cooldown` do).
    pub fn breaker(mut self, threshold: Option<u32>, cooldown: Option<Duration>) -> Self {
        self.options.breaker_threshold = threshold.map(|n| n.max(1));
        self.options.breaker_cooldown = cooldown;
        self
    }

    /// Runs until SIGINT or SIGTERM, or until the maximum run time. The event in hand is
    /// finished first.
    pub async fn run(self) -> Result<Summary, WorkerError> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `shutdown` completes (or the maximum run time).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Summary, WorkerError> {
        self.run_mode(shutdown, false).await
    }

    /// Delivers everything that is due now, then returns: for tests, replays and cron jobs.
    pub async fn drain(self) -> Result<Summary, WorkerError> {
        self.run_mode(std::future::pending(), true).await
    }

    async fn run_mode(
        self,
        shutdown: impl Future<Output = ()>,
        drain: bool,
    ) -> Result<Summary, WorkerError> {
        let (subscriptions, shares) = self.subscriptions(!drain)?;
        warn_orphans(self.store.as_ref()).await?;
        let started = SystemTime::now();
        let (stop, stopped) = watch::channel(false);
        let deadline = self.options.max_runtime.map(|limit| Instant::now() + limit);
        // Every worker fires the timers, whatever handlers it delivers: a drain fires those due
        // now before it delivers, a run keeps firing them as they come due.
        let mut firing = timers::Firing::new(self.store.clone(), self.options.poll_interval);
        firing.announce_overdue().await?;
        let firing = if drain {
            firing.fire_due().await?;
            tokio::spawn(std::future::ready(firing.summary()))
        } else {
            tokio::spawn(firing.run(Stop::new(stopped.clone(), deadline)))
        };
        // Each handler's membership beats first, so its share is known before any claim.
        let mut members = JoinSet::new();
        for share in shares {
            let (store, options) = (self.store.clone(), self.options.clone());
            let mut membership = share::Membership::new(store, share, options);
            membership.beat().await;
            members.spawn(membership.run(Stop::new(stopped.clone(), deadline)));
        }
        let mut tasks = JoinSet::new();
        for sub in subscriptions {
            let (bus, store, options) =
                (self.bus.clone(), self.store.clone(), self.options.clone());
            let stop = Stop::new(stopped.clone(), deadline);
            let span = tracing::info_span!(
                "subscription",
                handler = sub.name(),
                segment = sub.segment()
            );
            tasks.spawn(
                async move { sub.run(&bus, &store, &options, stop, drain).await }.instrument(span),
            );
        }
        let end = deadline;
        let deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut summary = Summary {
            started: Some(started),
            ..Summary::default()
        };
        let mut first_error = None;
        let mut claimed = std::collections::BTreeSet::new();
        // Records a finished subscription; `true` when it failed.
        let mut collect = |joined: Result<
            Result<subscription::Finished, StoreError>,
            tokio::task::JoinError,
        >| {
            let error = match joined {
                Ok(Ok(done)) => {
                    summary.add(done.handler, done.summary);
                    let holdings = summary.holdings.entry(done.handler.to_owned()).or_default();
                    holdings.extend(done.holdings);
                    // Held elsewhere: no segment of the handler was ever held by this worker.
                    if done.claimed {
                        claimed.insert(done.handler);
                        summary.held_elsewhere.remove(done.handler);
                    } else if !claimed.contains(done.handler) {
                        let seen = summary
                            .held_elsewhere
                            .entry(done.handler.to_owned())
                            .or_default();
                        if done.held_elsewhere.is_some() {
                            *seen = done.held_elsewhere;
                        }
                    }
                    return false;
                }
                Ok(Err(e)) => WorkerError::Store(e),
                Err(e) => WorkerError::Invalid(vec![format!("a subscription task failed: {e}")]),
            };
            first_error.get_or_insert(error);
            true
        };
        tokio::pin!(shutdown, deadline);
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    Some(joined) => if collect(joined) {
                        tracing::error!("worker stopping: a subscription failed");
                        break;
                    },
                    None => {
                        // Every subscription also watches the deadline and may see it first.
                        if end.is_some_and(|at| Instant::now() >= at) {
                            tracing::info!("worker stopping: maximum run time reached");
                        }
                        break;
                    }
                },
                () = &mut shutdown => {
                    tracing::info!("worker stopping: shutdown requested; finishing the events in hand");
                    break;
                }
                () = &mut deadline => {
                    tracing::info!("worker stopping: maximum run time reached");
                    break;
                }
            }
        }
        let _ = stop.send(true);
        while let Some(joined) = tasks.join_next().await {
            let _ = collect(joined);
        }
        while members.join_next().await.is_some() {}
        match firing.await {
            Ok(timers) => summary.timers = timers,
            Err(e) => {
                first_error.get_or_insert(WorkerError::Invalid(vec![format!(
                    "the timer task failed: {e}"
                )]));
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(summary),
        }
    }

    /// Resolves the handlers to run, reporting every unknown or non-durable name at once: a
    /// subscription per segment, and each handler's share of segments (`limited`: the fair
    /// share of the live members; otherwise, for a drain, whatever it can claim).
    fn subscriptions(
        &self,
        limited: bool,
    ) -> Result<(Vec<Subscription>, Vec<Arc<share::Share>>), WorkerError> {
        let catalog = catalog();
        let durable = catalog
            .handlers()
            .iter()
            .filter(|h| h.kind() == HandlerKind::Durable);
        let segments = self.store.segments();
        let shares = std::cell::RefCell::new(BTreeMap::new());
        let subscribe = |h: &'static crate::catalog::HandlerInfo| {
            // A process manager's stream is one segment: its instances, not its aggregates,
            // are what must stay in order, and the worker keeps them so.
            let segments = match crate::process::process(h.name()) {
                Some(_) => 1,
                None => segments,
            };
            let share = Arc::clone(
                shares
                    .borrow_mut()
                    .entry(h.name())
                    .or_insert_with(|| share::Share::new(h.name(), segments, limited)),
            );
            (0..segments)
                .map(move |s| Subscription::new(h, s, catalog, &self.options, Arc::clone(&share)))
        };
        let shares_of = |subs: Vec<Subscription>| {
            // Only the handlers that run a membership: a drain has none.
            let shares = shares.take().into_values();
            (
                subs,
                if limited {
                    shares.collect()
                } else {
                    Vec::new()
                },
            )
        };
        let Some(names) = &self.handlers else {
            let subs = durable.flat_map(subscribe).collect();
            return Ok(shares_of(subs));
        };
        let mut problems = Vec::new();
        let mut subs = Vec::new();
        for name in names {
            match catalog.handler(name) {
                Some(h) if h.kind() == HandlerKind::Durable => subs.extend(subscribe(h)),
                Some(h) => problems.push(format!(
                    "handler `{name}` is {}, not durable: it runs inline; mark it `#[event_handler(durable)]` to deliver it from the store",
                    h.kind().as_str()
                )),
                None => problems.push(unknown_handler(name)),
            }
        }
        if problems.is_empty() {
            Ok(shares_of(subs))
        } else {
            Err(WorkerError::Invalid(problems))
        }
    }
}

/// The one-line answer to a handler name that is not one of this program's: every durable
/// handler's name, for the CLI and the worker alike.
pub(crate) fn unknown_handler(name: &str) -> String {
    let known: Vec<_> = catalog()
        .handlers()
        .iter()
        .filter(|h| h.kind() == HandlerKind::Durable)
        .map(|h| h.name())
        .collect();
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    format!(
        "no handler is named `{name}`; durable handlers: {known} (a handler in another crate runs only once the binary links it: add `events::link!(that_crate);`)"
    )
}

/// A durable handler's progress, its lag counted over every name its events are stored under:
/// the event's own and, for an event set's enum, each variant's (as the worker reads them), so
/// `status`, the gauges and replay see the same lag the worker works through.
pub async fn handler_status(
    store: &dyn DurableStore,
    handler: &str,
    event: &str,
) -> Result<HandlerStatus, StoreError> {
    let mut status = store.status(handler, event).await?;
    let variants = crate::sourcing::variants_of(event).unwrap_or_default();
    for variant in variants.iter().filter(|v| v.name != event) {
        let more = store.status(handler, variant.name).await?;
        status.lag += more.lag;
        status.lag_since = match (status.lag_since, more.lag_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(status)
}

/// Stored checkpoints whose name no durable handler of this program has: a handler renamed or
/// moved, whose new name starts from the beginning unless its checkpoint is moved
/// (`rename-checkpoint`).
pub async fn orphaned_checkpoints(store: &dyn DurableStore) -> Result<Vec<String>, StoreError> {
    let catalog = catalog();
    let mut orphans: Vec<String> = store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| c.handler)
        // `relay:<stream>` is the NATS relay's checkpoint, not a handler's.
        .filter(|name| !name.starts_with("relay:"))
        .filter(|name| {
            catalog
                .handler(name)
                .is_none_or(|h| h.kind() != HandlerKind::Durable)
        })
        .collect();
    orphans.dedup();
    Ok(orphans)
}

async fn warn_orphans(store: &dyn DurableStore) -> Result<(), StoreError> {
    for name in orphaned_checkpoints(store).await? {
        tracing::warn!(
            checkpoint = name.as_str(),
            "orphaned checkpoint: no durable handler of this program is named `{name}`; if a handler was renamed, move its checkpoint with `rename-checkpoint {name} <new name>`, or its new name delivers the whole history again"
        );
    }
    Ok(())
}
