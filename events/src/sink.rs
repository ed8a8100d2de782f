//! The sink a store backend implements, so the core never imports a store: the untyped records
//! of events, views and timers that a published event, an outbox or a durable handler hands
//! to it. A leaf of the core: it imports nothing of the kernel (the typed constructors of
//! these records are in `bus::store`, beside the bus's store-backed walk).

use std::fmt;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::error::{BoxError, PublishError};

/// An event to store for its durable handlers, untyped: what a [`DurableSink`] appends.
#[derive(Clone, Debug, PartialEq)]
pub struct DurableRecord {
    /// The id the inline handlers saw in their [`Meta`](crate::meta::Meta).
    pub event_id: Uuid,
    /// The event's stable name.
    pub name: &'static str,
    /// Its schema version.
    pub version: u32,
    /// The stream's aggregate type: the event's, or its name when it declares none.
    pub aggregate_type: &'static str,
    /// The stream's aggregate id (empty when the event has none).
    pub aggregate_id: String,
    /// The payload, serialized by the event's `Serialize`.
    pub payload: serde_json::Value,
    /// The id shared by every event of one chain.
    pub correlation_id: Uuid,
    /// The id of the event or command that caused this one.
    pub causation_id: Option<Uuid>,
    /// When it happened.
    pub occurred_at: SystemTime,
}

/// A view write, untyped: staged by a durable handler (through a `sourcing::ViewKeeper`) or
/// into an [`Outbox`](crate::outbox::Outbox) (`sourcing::ViewRepository::stage`). The backend
/// writes it in the same transaction as the checkpoint or the outbox's events, so they commit
/// or roll back together.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewWrite {
    /// The view's name (`View::NAME`).
    pub view: &'static str,
    /// The view's id.
    pub id: String,
    /// The view's new body.
    pub body: serde_json::Value,
    /// The version the view was at when it was read (`None`: it did not exist). The write
    /// happens only if the stored view is still there; otherwise the transaction fails with
    /// a view conflict and writes nothing.
    pub expected: Option<u64>,
    /// The version it is saved at.
    pub version: u64,
}

/// The id of a durable timer (UUID v7): what `schedule` returns, what the CLI's `timers`
/// lists and `timers cancel <id>` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub Uuid);

impl TimerId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for TimerId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for TimerId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// When a timer is due: after a delay (from a [`Duration`]) or at a time (from a
/// [`SystemTime`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// This long after it is scheduled.
    After(Duration),
    /// At this time (a time in the past fires at the worker's next look).
    At(SystemTime),
}

impl Due {
    /// The due time of a timer scheduled at `now`.
    pub fn at(self, now: SystemTime) -> SystemTime {
        match self {
            Due::After(delay) => now + delay,
            Due::At(at) => at,
        }
    }
}

impl From<Duration> for Due {
    fn from(delay: Duration) -> Self {
        Due::After(delay)
    }
}

impl From<SystemTime> for Due {
    fn from(at: SystemTime) -> Self {
        Due::At(at)
    }
}

/// A timer to store: at `due_at` a worker appends `event` to the log (its aggregate's stream,
/// with its event id, correlation and causation) and deletes the timer, in one transaction;
/// the event then takes the normal durable path (retries, dead letters, hold-back).
#[derive(Clone, Debug, PartialEq)]
pub struct NewTimer {
    /// Its id.
    pub id: TimerId,
    /// When it fires.
    pub due_at: SystemTime,
    /// Who scheduled it (a process manager and its instance, for example), if anyone said.
    pub owner: Option<String>,
    /// Its name for its owner: a timer with the owner and key of a stored one replaces it.
    pub key: Option<String>,
    /// The event it fires.
    pub event: DurableRecord,
}

/// Which stored timer to cancel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimerTarget {
    /// The timer with this id.
    Id(TimerId),
    /// The timer an owner scheduled under a key.
    Key {
        /// The owner.
        owner: String,
        /// The key.
        key: String,
    },
}

/// A timer write, untyped: staged into an [`Outbox`](crate::outbox::Outbox) (committed with its
/// events and views) or by a durable handler while a worker delivers (committed with its
/// checkpoint).
#[derive(Clone, Debug, PartialEq)]
pub enum TimerWrite {
    /// Stores a timer; one with the same owner and key is replaced (re-scheduled).
    Schedule(NewTimer),
    /// Deletes a timer, if it is still there (cancelling one that fired or never existed
    /// writes nothing).
    Cancel(TimerTarget),
}

/// A timer could not be scheduled; nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The event to fire does not serialize.
    #[error("cannot schedule `{event}`: it does not serialize ({source}); fix its `Serialize`")]
    Encode {
        /// The event's name.
        event: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// The bus has no store to keep the timer in.
    #[error("cannot schedule `{event}`: the bus has no store to keep timers in; give it one with `Bus::builder().store(events::store::connect(url).await?)`")]
    NoStore {
        /// The event's name.
        event: &'static str,
    },
    /// The store refused or failed.
    #[error("cannot schedule `{event}`: the store failed: {source}")]
    NotStored {
        /// The event's name.
        event: &'static str,
        /// Why.
        source: BoxError,
    },
    /// Staged outside a durable handler's delivery (by a task it spawned, after it returned).
    #[error("cannot schedule or cancel a timer after the delivery was settled: use `Timers` only while the handler runs, not from a task it spawned")]
    Settled,
}

/// An outbox whose commit failed: what it scheduled was not stored either (an outbox closure
/// that returns `ScheduleError` gets the commit's error as one).
impl From<PublishError> for ScheduleError {
    fn from(e: PublishError) -> Self {
        ScheduleError::NotStored {
            event: e.event(),
            source: Box::new(e),
        }
    }
}

/// Where a bus stores the events that have durable handlers (`Bus::builder().store(..)`).
/// Every store backend implements it, and so does the handle `events::store::connect(url)`
/// returns; each record goes to the end of its aggregate's stream.
#[async_trait::async_trait]
pub trait DurableSink: Send + Sync + 'static {
    /// Appends the records, in order, writes the views and the timers, in one transaction:
    /// all of it or none (a view no longer at its expected version fails it). Returns the
    /// records' positions in the log, in the same order.
    async fn commit(
        &self,
        records: Vec<DurableRecord>,
        views: Vec<ViewWrite>,
        timers: Vec<TimerWrite>,
    ) -> Result<Vec<u64>, BoxError>;
}
