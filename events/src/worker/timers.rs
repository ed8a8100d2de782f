//! Durable timers in the worker: the [`Timers`] handler parameter (a durable handler schedules
//! and cancels timers, committed with its checkpoint) and the firing task every worker runs,
//! whatever handlers it delivers.
//!
//! Firing takes the due timers in due order and, in one transaction per round, appends each
//! one's event to the log and deletes the timer ([`DurableStore::fire_timers`]): a timer
//! fires once however many workers race, and its event then takes the normal durable path
//! (retries, dead letters, hold-back). The task sleeps until the next due time (or the poll
//! interval, or a wake-up of the store: a timer scheduled meanwhile), so a timer fires within
//! moments of its due time while a worker runs. A worker that starts with timers already due
//! (none was running) says how many and how late, once, then fires them in due order.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::event::DomainEvent;
use crate::extract::{Context, FromContext};
use crate::meta::Meta;
use crate::report::ExtractError;
use crate::sink::{Due, ScheduleError, TimerId, TimerTarget, TimerWrite};
use crate::sourcing::Staging;
use crate::stop::Stop;
use crate::store::durable::DurableStore;
use crate::store::StoreError;

/// How many timers one firing transaction takes at most.
const FIRE_BATCH: usize = 500;

/// How long to wait before looking again when timers are due but none fired (another worker
/// is firing them).
const BUSY_RETRY: Duration = Duration::from_millis(20);

/// Schedules and cancels durable timers from a durable handler: the writes are committed with
/// the handler's checkpoint (and discarded if it fails), so a redelivered event does not
/// schedule twice. The fired event's correlation is the handled event's, its causation the
/// handled event.
///
/// A handler parameter, given to durable handlers while a [`Worker`](super::Worker) delivers;
/// elsewhere its extraction fails with a message that says so (use the outbox's `schedule`
/// or `Bus::schedule` there).
///
/// ```
/// use std::time::Duration;
/// use events::worker::{Timers, Worker};
/// use events::{event_handler, Bus, BoxError, DomainEvent};
/// # use serde::{Deserialize, Serialize};
/// #[derive(DomainEvent, Serialize, Deserialize)]
/// #[event(aggregate = "Order")]
/// struct OrderPlaced { #[event(aggregate_id)] order: u32 }
/// #[derive(DomainEvent, Serialize, Deserialize)]
/// #[event(aggregate = "Order")]
/// struct PaymentTimedOut { #[event(aggregate_id)] order: u32 }
///
/// #[event_handler(durable, name = "orders.await_payment")]
/// fn await_payment(e: &OrderPlaced, timers: Timers) -> Result<(), BoxError> {
///     let owner = format!("order/{}", e.order);
///     timers.schedule_keyed(owner, "payment", Duration::from_secs(900), &PaymentTimedOut { order: e.order })?;
///     Ok(())
/// }
///
/// #[event_handler(durable, name = "orders.cancel_unpaid")]
/// fn cancel_unpaid(e: &PaymentTimedOut) { /* fires after 15 minutes */ }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = events::store::connect("sqlite::memory:").await?;
/// let bus = Bus::builder().store(store.clone()).build()?;
/// bus.dispatch(&OrderPlaced { order: 7 }).await?;
/// Worker::new(&bus, &store).handlers(["orders.await_payment"]).drain().await?;
/// let timers = store.timers().await?;
/// assert_eq!((timers[0].owner.as_deref(), timers[0].key.as_deref()), (Some("order/7"), Some("payment")));
/// # Ok::<(), BoxError>(()) }).unwrap();
/// ```
pub struct Timers {
    staging: Arc<Staging>,
    cause: Meta,
}

impl FromContext for Timers {
    fn from_context(cx: &Context<'_>) -> Result<Self, ExtractError> {
        let staging = Staging::current().ok_or_else(|| {
            ExtractError::Other(
                "`Timers` is given to durable handlers while a worker delivers (`#[event_handler(durable, ..)]`); elsewhere schedule with the outbox's `schedule` or `Bus::schedule`".to_owned(),
            )
        })?;
        Ok(Self {
            staging,
            cause: cx.meta().clone(),
        })
    }
}

impl Timers {
    /// Schedules `event` at `when` (a [`Duration`] from now, or a [`SystemTime`]); returns the
    /// timer's id.
    pub fn schedule<E: DomainEvent + Serialize>(
        &self,
        when: impl Into<Due>,
        event: &E,
    ) -> Result<TimerId, ScheduleError> {
        self.stage(when.into(), event, None, None)
    }

    /// Schedules `event` at `when` as `owner`'s timer `key`, replacing a stored timer of the
    /// same owner and key (re-scheduling it).
    pub fn schedule_keyed<E: DomainEvent + Serialize>(
        &self,
        owner: impl Into<String>,
        key: impl Into<String>,
        when: impl Into<Due>,
        event: &E,
    ) -> Result<TimerId, ScheduleError> {
        self.stage(when.into(), event, Some(owner.into()), Some(key.into()))
    }

    /// Cancels `owner`'s timer `key`, if it is still stored when the delivery commits.
    pub fn cancel(
        &self,
        owner: impl Into<String>,
        key: impl Into<String>,
    ) -> Result<(), ScheduleError> {
        self.staging
            .stage_timer(TimerWrite::Cancel(TimerTarget::Key {
                owner: owner.into(),
                key: key.into(),
            }))
    }

    /// Cancels timer `id`, if it is still stored when the delivery commits.
    pub fn cancel_id(&self, id: TimerId) -> Result<(), ScheduleError> {
        self.staging
            .stage_timer(TimerWrite::Cancel(TimerTarget::Id(id)))
    }

    fn stage<E: DomainEvent + Serialize>(
        &self,
        when: Due,
        event: &E,
        owner: Option<String>,
        key: Option<String>,
    ) -> Result<TimerId, ScheduleError> {
        let meta = self.cause.caused_by(Meta::of(event));
        let (id, write) = TimerWrite::schedule(when, event, &meta, owner, key)?;
        self.staging.stage_timer(write)?;
        Ok(id)
    }
}

/// What a worker's firing did over its run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerSummary {
    /// Timers fired.
    pub fired: u64,
    /// Timers already due when the worker started (none was running to fire them).
    pub overdue_at_start: u64,
    /// How late the oldest of those was when the worker started.
    pub oldest_overdue_by: Option<Duration>,
}

/// The firing task of one worker.
pub(crate) struct Firing {
    store: Arc<dyn DurableStore>,
    poll_interval: Duration,
    summary: TimerSummary,
}

impl Firing {
    pub(crate) fn new(store: Arc<dyn DurableStore>, poll_interval: Duration) -> Self {
        Self {
            store,
            poll_interval,
            summary: TimerSummary::default(),
        }
    }

    /// Says how many timers are overdue as the worker starts (once), and how late the oldest.
    pub(crate) async fn announce_overdue(&mut self) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let counts = self.store.timer_counts(now).await?;
        if counts.overdue == 0 {
            return Ok(());
        }
        let late = counts
            .oldest_due
            .and_then(|at| now.duration_since(at).ok())
            .unwrap_or_default();
        self.summary.overdue_at_start = counts.overdue;
        self.summary.oldest_overdue_by = Some(late);
        tracing::warn!(
            overdue = counts.overdue,
            oldest_late_ms = late.as_millis() as u64,
            "firing {} overdue timer{}, the oldest due {} ago",
            counts.overdue,
            if counts.overdue == 1 { "" } else { "s" },
            humane(late)
        );
        Ok(())
    }

    /// Fires every timer due now, round after round; returns how many fired.
    pub(crate) async fn fire_due(&mut self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let now = SystemTime::now();
            let fired = self.store.fire_timers(now, FIRE_BATCH).await?;
            for timer in &fired {
                let late = now.duration_since(timer.due_at).unwrap_or_default();
                tracing::debug!(timer = %timer.id, event = timer.event.as_str(), position = timer.position, late_ms = late.as_millis() as u64, "timer fired");
            }
            let n = fired.len() as u64;
            total += n;
            if n > 0 {
                metrics::counter!("events_timers_fired_total").increment(n);
                tracing::info!(
                    fired = n,
                    "fired {n} timer{}",
                    if n == 1 { "" } else { "s" }
                );
            }
            if fired.len() < FIRE_BATCH {
                break;
            }
        }
        self.summary.fired += total;
        Ok(total)
    }

    /// Fires timers as they come due until stopped; store errors are logged, counted and
    /// ridden out (tried again after the poll interval).
    pub(crate) async fn run(mut self, mut stop: Stop) -> TimerSummary {
        let mut wake = self.store.wakeups();
        loop {
            if stop.requested() {
                break;
            }
            wake.borrow_and_update();
            let wait = match self.round().await {
                Ok(wait) => wait,
                Err(e) => {
                    metrics::counter!("events_worker_store_errors_total", "handler" => "timers")
                        .increment(1);
                    tracing::warn!(error = %e, retry_in = ?self.poll_interval, "cannot fire timers; trying again");
                    self.poll_interval
                }
            };
            if stop.wait(wait, Some(&mut wake)).await {
                break;
            }
        }
        self.summary
    }

    /// One round: fires what is due, then says how long to sleep before the next look.
    async fn round(&mut self) -> Result<Duration, StoreError> {
        let mut counts = self.store.timer_counts(SystemTime::now()).await?;
        if counts.overdue > 0 {
            if self.fire_due().await? == 0 {
                // Due but none fired: another worker is firing them.
                return Ok(BUSY_RETRY);
            }
            counts = self.store.timer_counts(SystemTime::now()).await?;
            if counts.overdue > 0 {
                return Ok(Duration::ZERO);
            }
        }
        let now = SystemTime::now();
        Ok(match counts.next_due {
            Some(at) => at
                .duration_since(now)
                .unwrap_or_default()
                .min(self.poll_interval),
            None => self.poll_interval,
        })
    }

    /// What it did so far.
    pub(crate) fn summary(&self) -> TimerSummary {
        self.summary
    }
}

/// `12 s`, `3 min 5 s`, `250 ms`: a delay as operators read it.
fn humane(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{} ms", d.as_millis())
    } else if secs < 120 {
        format!("{secs} s")
    } else if secs < 7200 {
        format!("{} min {} s", secs / 60, secs % 60)
    } else {
        format!("{} h {} min", secs / 3600, (secs % 3600) / 60)
    }
}
