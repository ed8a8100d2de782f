//! The seam between durable delivery and a database: [`DurableStore`], the one object-safe trait
//! a backend implements (SQLite here, PostgreSQL behind its feature), so the engine, the
//! [`Worker`](crate::worker::Worker) and the CLI are written once and an application picks its
//! backend from a URL at run time ([`connect`](super::connect)).
//!
//! The model every backend keeps:
//! - a handler's stream is split into [`segments`](DurableStore::segments) by a stable hash of
//!   the aggregate (SQLite: one segment); each (handler, segment) has its own checkpoint and
//!   its own [`Claim`];
//! - a claim is a lease with an [`Owner`] and a fencing `token` that grows each time the claim
//!   changes hands: every write a worker makes passes its claim and fails with
//!   [`StoreError::LeaseLost`] once another worker took over, so a worker that stalled past its
//!   lease cannot commit stale work;
//! - an outcome, the checkpoint move and the view writes of the delivery commit in one
//!   transaction ([`DurableStore::settle`]);
//! - while an aggregate has a pending failure (retrying, dead, or held back), that handler's
//!   later events of the aggregate are held back behind it, in position order.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    EventStore, NewEvent, StoreError, StoredEvent, StoredSnapshot, StreamId, StreamVersion,
};
use crate::bus::Bus;
use crate::error::{BoxError, PublishError};
use crate::outbox::Outbox;
use crate::report::Report;
use crate::sink::{DurableRecord, DurableSink};
pub use crate::sink::{NewTimer, TimerId, TimerTarget, TimerWrite, ViewWrite};

/// A worker process's identity, written on the claims it holds so that operators (`status`)
/// and other workers can say who holds what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The machine's host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// A random id per [`Worker`](crate::worker::Worker): two workers of one process differ.
    pub worker: Uuid,
}

impl Owner {
    /// This process, with a fresh worker id.
    pub fn current() -> Self {
        Self {
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            worker: Uuid::now_v7(),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

/// A live lease on one (handler, segment), as others see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The handler.
    pub handler: String,
    /// The segment of the handler's stream.
    pub segment: u32,
    /// Who holds it.
    pub owner: Owner,
    /// When it lapses unless renewed.
    pub expires_at: SystemTime,
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let left = self
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        write!(
            f,
            "{} (lease expires in {} ms)",
            self.owner,
            left.as_millis()
        )
    }
}

/// A claim this worker holds on one (handler, segment): pass it to every delivery call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The handler.
    pub handler: String,
    /// The segment of the handler's stream.
    pub segment: u32,
    /// The holder.
    pub owner: Owner,
    /// The fencing token: grows each time the claim passes to another owner; a write with an
    /// older token fails with [`StoreError::LeaseLost`].
    pub token: u64,
    /// When the lease lapses unless renewed.
    pub expires_at: SystemTime,
}

impl Claim {
    /// The segment it is a claim on.
    pub fn segment_id(&self) -> SegmentId<'_> {
        SegmentId {
            handler: &self.handler,
            segment: self.segment,
        }
    }

    /// The error of a write with this claim after another worker took it over.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn lost(&self) -> StoreError {
        StoreError::LeaseLost {
            handler: self.handler.clone(),
            segment: self.segment,
        }
    }
}

/// One segment of a handler's stream: what a claim, a lease and a checkpoint are kept per.
/// The handler and the segment always go together, so they are one small key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentId<'a> {
    /// The handler (its checkpoint name).
    pub handler: &'a str,
    /// The segment of the handler's stream (SQLite: always 0).
    pub segment: u32,
}

/// What [`DurableStore::claim`] asks for: a segment's claim, for an owner, for a while. A
/// worker claims and renews with the same owner and lease time, segment after segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimRequest<'a> {
    /// The segment to claim.
    pub segment: SegmentId<'a>,
    /// Who claims it.
    pub owner: &'a Owner,
    /// How long the lease lasts unless renewed.
    pub ttl: Duration,
}

/// What [`DurableStore::heartbeat`] registers: a live worker of a handler, for a while. A
/// worker beats with the same owner and time to live as it claims with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat<'a> {
    /// The handler it delivers.
    pub handler: &'a str,
    /// The worker.
    pub owner: &'a Owner,
    /// How long it counts as live unless it beats again.
    pub ttl: Duration,
}

/// A live worker of a handler: what the workers split the handler's segments by (each takes
/// at most [`fair_share`] of them) and what `status` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The worker.
    pub owner: Owner,
    /// When it joined (its first heartbeat of this membership).
    pub joined_at: SystemTime,
    /// When it stops counting as live unless it beats again.
    pub expires_at: SystemTime,
    /// The segments it holds a live lease on, in order.
    pub segments: Vec<u32>,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.owner)?;
        if self.segments.is_empty() {
            return write!(f, "standby");
        }
        let segments: Vec<String> = self.segments.iter().map(u32::to_string).collect();
        write!(f, "segments {}", segments.join(","))
    }
}

/// How many of `segments` one of `members` live workers takes at most: `ceil(segments /
/// members)` (every segment when it is alone, or when no member is known yet).
pub fn fair_share(segments: u32, members: usize) -> u32 {
    let members = u32::try_from(members.max(1)).unwrap_or(u32::MAX);
    segments.div_ceil(members)
}

/// Which events [`DurableStore::new_events`] reads: those of the claim's segment after its
/// checkpoint that are stored under one of `names` (an event set's enum reads its variants'
/// names too), at most `limit`, in position order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unread<'a> {
    /// The claim whose segment and checkpoint are read.
    pub claim: &'a Claim,
    /// The event names to read.
    pub names: &'a [&'a str],
    /// At most this many events.
    pub limit: usize,
    /// Every segment's events, not only the claim's: a process manager's stream is one
    /// segment (its instances are ordered in the worker).
    pub whole: bool,
}

/// The answer to [`DurableStore::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// The claim is ours (taken or renewed).
    Acquired(Claim),
    /// Another live worker holds it.
    HeldBy(Lease),
}

/// Where a failed event stands for one handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureStatus {
    /// Will be tried again at `next_attempt_at`.
    Retrying,
    /// Out of attempts (or undecodable): waits for an operator to retry or drop it.
    Dead,
    /// Not tried yet: an earlier event of the same aggregate is retrying or dead.
    Held,
}

impl FailureStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureStatus::Retrying => "retrying",
            FailureStatus::Dead => "dead",
            FailureStatus::Held => "held",
        }
    }

    /// The status of a stored name (`None` for an unknown one).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "retrying" => Some(FailureStatus::Retrying),
            "dead" => Some(FailureStatus::Dead),
            "held" => Some(FailureStatus::Held),
            _ => None,
        }
    }
}

/// One pending failure of one handler: a dead letter, a retry, or an event held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingFailure {
    /// Its id, for `retry` and `drop`.
    pub id: i64,
    /// The handler.
    pub handler: String,
    /// The event's position in the log.
    pub position: u64,
    /// `type/id` of the event's aggregate ([`aggregate_key`]).
    pub aggregate: String,
    /// Where it stands.
    pub status: FailureStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is tried next (retrying only).
    pub next_attempt_at: Option<SystemTime>,
    /// The last error's text.
    pub last_error: Option<String>,
    /// When it last changed: its last failed attempt, the moment it was held back, or an
    /// operator's `retry`. Its age, for operators.
    pub updated_at: SystemTime,
    /// When its event occurred (the log's `occurred_at`).
    pub occurred_at: SystemTime,
}

/// The key hold-back works by: `type/id` of an event's aggregate.
pub fn aggregate_key(event: &StoredEvent) -> String {
    format!("{}/{}", event.aggregate_type, event.aggregate_id)
}

/// Where [`DurableStore::append_to`] appends: at the end of a stream, whatever it holds, or at
/// the version the writer expects it at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendAt<'a> {
    /// After whatever the stream holds: no version check.
    End(StreamId<'a>),
    /// Only if the stream is still at this version ([`StoreError::Conflict`] otherwise).
    Version(StreamVersion<'a>),
}

impl<'a> AppendAt<'a> {
    /// The stream appended to.
    pub fn stream(self) -> StreamId<'a> {
        match self {
            AppendAt::End(stream) => stream,
            AppendAt::Version(at) => at.stream,
        }
    }

    /// The version the stream must be at, if any.
    pub fn expected(self) -> Option<u64> {
        match self {
            AppendAt::End(_) => None,
            AppendAt::Version(at) => Some(at.version),
        }
    }
}

/// The answer to [`DurableStore::append_once`].
#[derive(Clone, Debug, PartialEq)]
pub enum AppendOnce {
    /// The event was appended, at `position`.
    Appended {
        /// Its position in the log.
        position: u64,
    },
    /// The log already held an event with this id, at `position`; nothing was written.
    AlreadyStored {
        /// Where the log holds it.
        position: u64,
    },
}

/// What to record for one event after an attempt (or instead of one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Delivered: nothing pending remains.
    Done,
    /// Failed: try again at `at`, after `attempts` attempts.
    Retry {
        /// Attempts made so far.
        attempts: u32,
        /// When to try next.
        at: SystemTime,
        /// The error's text.
        error: String,
    },
    /// Failed for good: a dead letter.
    Dead {
        /// Attempts made.
        attempts: u32,
        /// The error's text.
        error: String,
    },
    /// Not attempted: an earlier event of its aggregate is pending. A pending failure that
    /// already exists for the event (a replay reading it again) is kept as it is.
    Hold,
}

impl ViewWrite {
    /// The error of a settle that found this view at another version than `expected`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn conflict(&self) -> StoreError {
        StoreError::ViewConflict {
            view: self.view.to_owned(),
            id: self.id.clone(),
            expected: self.expected,
        }
    }
}

/// One write of a worker, committed with the checkpoint it implies and the view writes of the
/// delivery (empty unless the handler succeeded and staged some).
#[derive(Clone, Copy, Debug)]
pub enum Settlement<'a> {
    /// A new event (after the checkpoint): record its outcome and move the checkpoint past it.
    New {
        /// The event.
        event: &'a StoredEvent,
        /// Its outcome.
        record: &'a Record,
        /// The view writes its handler staged.
        views: &'a [ViewWrite],
        /// The timer writes its handler staged.
        timers: &'a [TimerWrite],
    },
    /// A run of new events a batch handler took in one call: move the checkpoint past `last`.
    Run {
        /// The last event's position.
        last: u64,
        /// The view writes the handler staged.
        views: &'a [ViewWrite],
        /// The timer writes the handler staged.
        timers: &'a [TimerWrite],
    },
    /// Another attempt of a pending event: record its outcome (`Done` removes it).
    Pending {
        /// The pending failure's id.
        id: i64,
        /// Its outcome.
        record: &'a Record,
        /// The view writes its handler staged.
        views: &'a [ViewWrite],
        /// The timer writes its handler staged.
        timers: &'a [TimerWrite],
    },
}

impl Settlement<'_> {
    /// The view writes to commit with it.
    pub fn views(&self) -> &[ViewWrite] {
        match self {
            Settlement::New { views, .. }
            | Settlement::Run { views, .. }
            | Settlement::Pending { views, .. } => views,
        }
    }

    /// The timer writes to commit with it.
    pub fn timers(&self) -> &[TimerWrite] {
        match self {
            Settlement::New { timers, .. }
            | Settlement::Run { timers, .. }
            | Settlement::Pending { timers, .. } => timers,
        }
    }
}

/// A stored timer, as `timers` lists it: when it is due, who scheduled it, what it fires.
#[derive(Clone, Debug, PartialEq)]
pub struct Timer {
    /// Its id.
    pub id: TimerId,
    /// When it fires.
    pub due_at: SystemTime,
    /// Who scheduled it, if anyone said (a process manager and its instance).
    pub owner: Option<String>,
    /// Its name for its owner.
    pub key: Option<String>,
    /// The name of the event it fires.
    pub event: String,
    /// The event's schema version.
    pub version: u32,
    /// The event's aggregate type (its name when it declares none).
    pub aggregate_type: String,
    /// The event's aggregate id (empty when it has none).
    pub aggregate_id: String,
    /// The event's payload.
    pub payload: serde_json::Value,
    /// The id the fired event gets.
    pub event_id: Uuid,
    /// The fired event's correlation id.
    pub correlation_id: Uuid,
    /// The fired event's causation id.
    pub causation_id: Option<Uuid>,
    /// When it was scheduled (or last re-scheduled).
    pub created_at: SystemTime,
}

impl Timer {
    /// The event this timer appends when it fires at `now`: its id, name, payload,
    /// correlation and causation, occurred at `now`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn fired_event(&self, now: SystemTime) -> NewEvent {
        NewEvent {
            event_id: self.event_id,
            name: self.event.clone(),
            version: self.version,
            payload: self.payload.clone(),
            metadata: super::EventMetadata {
                correlation_id: Some(self.correlation_id),
                causation_id: self.causation_id,
                ..super::EventMetadata::default()
            },
            occurred_at: now,
        }
    }
}

/// How many timers are stored, and how many of them are due ([`DurableStore::timer_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerCounts {
    /// Stored timers (not fired yet).
    pub scheduled: u64,
    /// Of those, the ones due at the time asked about: a running worker fires them within
    /// moments, so a count that stays up means no worker is running.
    pub overdue: u64,
    /// When the oldest of the overdue ones was due.
    pub oldest_due: Option<SystemTime>,
    /// When the next timer is due (overdue or not).
    pub next_due: Option<SystemTime>,
}

/// A timer a worker fired ([`DurableStore::fire_timers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiredTimer {
    /// The timer's id (the row is gone).
    pub id: TimerId,
    /// When it was due.
    pub due_at: SystemTime,
    /// The event's name.
    pub event: String,
    /// The position the event was appended at.
    pub position: u64,
}

/// A checkpoint reset: where the checkpoint moves back to and what becomes of the pending
/// failures. The operator's replay passes both from the CLI through `reset_handler` (on
/// `dyn DurableStore`) to each segment's [`reset_checkpoint`](DurableStore::reset_checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewind {
    /// The handler receives again every event after this position (0: the whole history).
    pub after: u64,
    /// What becomes of its pending failures.
    pub failures: OnReset,
}

impl Rewind {
    /// Fails with [`StoreError::PastHead`] when `after` is beyond the log's `head`.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn check(self, head: u64) -> Result<(), StoreError> {
        if self.after > head {
            return Err(StoreError::PastHead {
                position: self.after + 1,
                head,
            });
        }
        Ok(())
    }
}

/// What to do with a handler's pending failures when its checkpoint is reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnReset {
    /// Keep them: their events stay pending and keep holding back their aggregates, so a
    /// replay delivers each aggregate in order.
    KeepFailures,
    /// Forget every pending failure of the handler (dead letters, retries, held events).
    DiscardFailures,
}

/// Pending failures a checkpoint reset forgot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Dead letters.
    pub dead: u64,
    /// Scheduled retries.
    pub retrying: u64,
    /// Events held back.
    pub held: u64,
}

/// One stored checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The handler name it is keyed by.
    pub handler: String,
    /// The segment.
    pub segment: u32,
    /// The last position handled (or passed).
    pub position: u64,
}

/// One handler's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerStatus {
    /// The handler.
    pub handler: String,
    /// The last position it has handled (or passed); with several segments, the lowest.
    pub checkpoint: u64,
    /// Events of its type after its checkpoints: its lag.
    pub lag: u64,
    /// When the oldest event of its lag (the first after its checkpoint) occurred, so its lag
    /// can be told in seconds; `None` when it has no lag.
    pub lag_since: Option<SystemTime>,
    /// Events waiting for a retry.
    pub retrying: u64,
    /// Dead letters.
    pub dead: u64,
    /// Events held back behind a retry or dead letter of the same aggregate.
    pub held: u64,
    /// Live leases on its segments.
    pub leases: Vec<Lease>,
    /// Its live workers ([`DurableStore::heartbeat`]), oldest first, with their segments.
    pub members: Vec<Member>,
    /// Its segments whose circuit is open now ([`DurableStore::record_circuit`]).
    pub circuits: Vec<OpenCircuit>,
}

/// A segment whose circuit breaker is open: its worker delivers nothing new there until the
/// cool-down ends, then one fresh event probes. Recorded by the worker holding the segment, so
/// `status`, `--json` and the gauges show it from any process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCircuit {
    /// The segment.
    pub segment: u32,
    /// When the cool-down ends.
    pub until: SystemTime,
    /// The fresh events that failed in a row and opened it.
    pub failures: u32,
}

/// Which stored events [`DurableStore::query_log`] returns: every filter given must match.
/// The default matches the whole log, from the first position, without a limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only the events of this aggregate stream: (aggregate type, aggregate id).
    pub aggregate: Option<(String, String)>,
    /// Only the events of this chain: the event with this id and every event whose
    /// correlation id it is.
    pub correlation: Option<Uuid>,
    /// Only events of this name.
    pub name: Option<String>,
    /// The first position to include (0 and 1 both mean the beginning).
    pub from: u64,
    /// The last position to include.
    pub to: Option<u64>,
    /// At most this many events (the first ones, in position order).
    pub limit: Option<usize>,
}

/// The durable side of a backend: the log as the worker and the CLI need it, claims,
/// checkpoints and pending failures. Object-safe, so `Arc<dyn DurableStore>` is chosen at run
/// time (see [`connect`](super::connect)).
///
/// Every method that changes what a handler has done takes the [`Claim`] and fails with
/// [`StoreError::LeaseLost`] when the claim is no longer current.
///
/// Every backend is also a [`DurableSink`], so the same handle is a bus's store
/// (`Bus::builder().store(..)`).
#[async_trait]
pub trait DurableStore: DurableSink + fmt::Debug {
    // --- the log -------------------------------------------------------------------------

    /// The backend itself, to reach its own calls (`store.sqlite()`, `store.postgres()` on the
    /// handle [`connect`](super::connect) returns).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Into how many segments each handler's stream is split (SQLite: 1).
    fn segments(&self) -> u32;

    /// Appends `events` to a stream in one transaction. With [`AppendAt::Version`] the stream
    /// must be at that version ([`StoreError::Conflict`] otherwise, nothing written); with
    /// [`AppendAt::End`] they go after whatever the stream holds.
    async fn append_to(
        &self,
        to: AppendAt<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Appends `event` to `at.stream` at `at.version` unless the log already holds an event
    /// with its id: then nothing is written and that event's position is returned. The check
    /// and the append are one transaction, so two processes taking the same event store it
    /// once (an inbox taking a redelivered message relies on it).
    async fn append_once(
        &self,
        at: StreamVersion<'_>,
        event: NewEvent,
    ) -> Result<AppendOnce, StoreError>;

    /// Up to `limit` events with a position greater than `after`, in position order, none of
    /// which a still-open transaction could precede.
    async fn read_log(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The highest committed position (0 when the log is empty).
    async fn log_head(&self) -> Result<u64, StoreError>;

    /// The stored events that match `query`, in position order (the operator's event log,
    /// `log` in the CLI). Reads what is committed now; it is not a checkpointed reader.
    async fn query_log(&self, query: &LogQuery) -> Result<Vec<StoredEvent>, StoreError>;

    /// Where this store lives, in one line an operator recognises (`sqlite:///abs/app.db`,
    /// `sqlite::memory:`, `postgres://user@host/db` without the password): the CLI names the
    /// store each command opened.
    fn location(&self) -> String;

    /// A counter that changes when something may have been appended (or a dead letter was
    /// rescheduled): look at its value, read, then await `changed()`; nothing is missed in
    /// between. Workers poll as well, for writers it cannot see.
    fn wakeups(&self) -> watch::Receiver<u64>;

    // --- delivery (a claim holder) ---------------------------------------------------------

    /// Takes the claim on the request's segment for its `ttl`, or renews it when its `owner`
    /// holds it (same token); a lapsed claim is taken with a new token. [`Claimed::HeldBy`]
    /// when another owner's lease is live.
    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Claimed, StoreError>;

    /// Gives the claim up (the token stays, so the next owner gets a newer one).
    async fn release(&self, claim: &Claim) -> Result<(), StoreError>;

    /// Records that the claim's circuit opened (until when, after how many failures), or closed
    /// (`None`), for operators. Fenced like every write with a claim: [`StoreError::LeaseLost`]
    /// when another worker holds the segment now. Taking a claim clears it.
    async fn record_circuit(
        &self,
        claim: &Claim,
        open: Option<&OpenCircuit>,
    ) -> Result<(), StoreError>;

    /// Registers `beat.owner` as a live worker of `beat.handler` for `beat.ttl` (or renews it),
    /// forgets the members whose heartbeat lapsed, and returns the live members, oldest first,
    /// each with the segments it holds a live lease on. Workers split a handler's segments by
    /// this list ([`fair_share`]), with no coordinator.
    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<Vec<Member>, StoreError>;

    /// Takes `owner` off the members of `handler` (a worker that stops), so the others take
    /// its share at once instead of after its heartbeat lapses.
    async fn leave(&self, handler: &str, owner: &Owner) -> Result<(), StoreError>;

    /// The [`Unread`] events of a claim's segment: after its checkpoint, under the names
    /// asked for, up to the limit, in position order.
    async fn new_events(&self, unread: Unread<'_>) -> Result<Vec<StoredEvent>, StoreError>;

    /// The aggregates ([`aggregate_key`]) of the claim's segment with a pending failure.
    async fn blocked_aggregates(&self, claim: &Claim) -> Result<HashSet<String>, StoreError>;

    /// The pending events that may be attempted now, with their events: the first pending
    /// event of each aggregate, when it is held (its blocker is gone) or its retry is due.
    async fn due_pending(
        &self,
        claim: &Claim,
        limit: usize,
    ) -> Result<Vec<(PendingFailure, StoredEvent)>, StoreError>;

    /// When the claim's next retry is due, if any.
    async fn next_retry(&self, claim: &Claim) -> Result<Option<SystemTime>, StoreError>;

    /// Records an outcome, the checkpoint it implies and the settlement's view writes in one
    /// transaction, if the claim is still current ([`StoreError::LeaseLost`] otherwise) and
    /// every view is still at the version its write expects ([`StoreError::ViewConflict`]
    /// otherwise); on an error nothing is written.
    async fn settle(&self, claim: &Claim, settlement: Settlement<'_>) -> Result<(), StoreError>;

    /// The stored body and version of view `view`'s `id`, if it was ever saved: what a
    /// `sourcing::ViewKeeper` reads before it stages a write.
    async fn load_view(
        &self,
        view: &str,
        id: &str,
    ) -> Result<Option<(serde_json::Value, u64)>, StoreError>;

    /// Moves the claim's checkpoint back so that it receives again every event after
    /// `rewind.after` (never forward: events it has not had yet are not skipped). Fails with
    /// [`StoreError::PastHead`] when that is beyond the log head. With
    /// [`OnReset::KeepFailures`] the pending failures stay, and events read again behind them
    /// are held back in order.
    async fn reset_checkpoint(
        &self,
        claim: &Claim,
        rewind: Rewind,
    ) -> Result<Discarded, StoreError>;

    // --- timers ------------------------------------------------------------------------------

    /// Fires up to `limit` timers due at `now`, in due order: in one transaction, appends each
    /// one's event to the end of its aggregate's stream and deletes the timer, so a timer
    /// fires once however many workers race (a timer another worker is firing is skipped).
    /// Returns what fired, in order.
    async fn fire_timers(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<FiredTimer>, StoreError>;

    /// The stored timers, in due order, at most `limit` (`None`: all).
    async fn list_timers(&self, limit: Option<usize>) -> Result<Vec<Timer>, StoreError>;

    /// How many timers are stored, and due at `now` (for `status` and the gauges).
    async fn timer_counts(&self, now: SystemTime) -> Result<TimerCounts, StoreError>;

    /// Writes timers outside any other transaction (the CLI's `cancel`); returns how many
    /// stored timers the writes found (a cancel of a timer that fired finds none).
    async fn write_timers(&self, writes: &[TimerWrite]) -> Result<u64, StoreError>;

    /// Moves timer `id` to `due_at`; `Ok(false)` when no such timer is stored (it fired or
    /// was cancelled).
    async fn reschedule_timer(&self, id: TimerId, due_at: SystemTime) -> Result<bool, StoreError>;

    // --- administration ----------------------------------------------------------------------

    /// Every pending failure (dead letters, retries, held events), optionally of one handler,
    /// ordered by handler and position.
    async fn failures(&self, handler: Option<&str>) -> Result<Vec<PendingFailure>, StoreError>;

    /// Schedules dead letters for a new round of attempts now: one by id, or all (of one
    /// handler). Returns how many.
    async fn retry_dead_letters(
        &self,
        id: Option<i64>,
        handler: Option<&str>,
    ) -> Result<usize, StoreError>;

    /// Drops a dead letter: its event is skipped for good by that handler, and the events of
    /// its aggregate held behind it are released. Returns whether it existed.
    async fn drop_dead_letter(&self, id: i64) -> Result<bool, StoreError>;

    /// Progress of handler `handler` of event `event`.
    async fn status(&self, handler: &str, event: &str) -> Result<HandlerStatus, StoreError>;

    /// Every stored checkpoint, by handler and segment.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError>;

    /// Moves a handler's checkpoints and pending failures to a new name (a handler renamed or
    /// moved). Refuses when `to` already has a checkpoint, when `from` has none, or while a
    /// worker holds a live lease on `from`.
    async fn rename_checkpoint(&self, from: &str, to: &str) -> Result<(), StoreError>;

    /// Creates or upgrades the backend's tables (the CLI's `migrate`); returns what it did, in
    /// one line. Backends that create their tables when they open have nothing to do.
    async fn migrate(&self) -> Result<String, StoreError> {
        Ok("nothing to migrate: this store creates its tables when it opens".to_owned())
    }

    // --- the application's log: streams, snapshots, views -----------------------------------
    //
    // What event-sourced repositories, snapshots and view repositories read and write, so they
    // run on `Arc<dyn DurableStore>` (its `EventStore` impl forwards here, and
    // `sourcing::ViewRepository` is built on it).

    /// The events of `stream` with a sequence greater than `after`, in sequence order (0: the
    /// whole stream).
    async fn load_stream(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The stream's snapshot, if one was saved.
    async fn read_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError>;

    /// Replaces the stream's snapshot.
    async fn write_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<(), StoreError>;

    /// Saves view `view`'s `id` with `body` at `version`, whatever it held.
    async fn save_view(
        &self,
        view: &str,
        id: &str,
        body: &serde_json::Value,
        version: u64,
    ) -> Result<(), StoreError>;

    /// Writes one view only if the stored view is still at `write.expected` (`None`: it must
    /// not exist yet): `Ok(false)`, and nothing written, when another writer changed it since
    /// it was read.
    async fn write_view(&self, write: &ViewWrite) -> Result<bool, StoreError>;

    /// Deletes every stored view of `view` (before a rebuild); returns how many.
    async fn clear_views(&self, view: &str) -> Result<u64, StoreError>;

    /// Up to `limit` stored rows of view `view`, by id: `(id, body)`. A process manager's
    /// command outbox is read this way.
    async fn list_views(
        &self,
        view: &str,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError>;

    /// Deletes view `view`'s `id`; `Ok(false)` when it was not stored.
    async fn delete_view(&self, view: &str, id: &str) -> Result<bool, StoreError>;

    /// Whether the log holds an event whose causation id is `causation`: a command with this
    /// id already took effect.
    async fn caused_by(&self, causation: Uuid) -> Result<bool, StoreError>;
}

/// Anything a [`Worker`](crate::worker::Worker) or the CLI can run on: a backend by reference
/// (cloned: backends are cheap handles) or an `Arc<dyn DurableStore>` from
/// [`connect`](super::connect).
pub trait IntoDurableStore {
    /// The shared backend.
    fn into_durable_store(self) -> Arc<dyn DurableStore>;
}

impl<S: DurableStore + Clone + 'static> IntoDurableStore for &S {
    fn into_durable_store(self) -> Arc<dyn DurableStore> {
        Arc::new(self.clone())
    }
}

impl IntoDurableStore for Arc<dyn DurableStore> {
    fn into_durable_store(self) -> Arc<dyn DurableStore> {
        self
    }
}

impl IntoDurableStore for &Arc<dyn DurableStore> {
    fn into_durable_store(self) -> Arc<dyn DurableStore> {
        Arc::clone(self)
    }
}

/// The handle [`connect`](super::connect) returns is a bus's store too.
#[async_trait]
impl DurableSink for Arc<dyn DurableStore> {
    async fn commit(
        &self,
        records: Vec<DurableRecord>,
        views: Vec<ViewWrite>,
        timers: Vec<TimerWrite>,
    ) -> Result<Vec<u64>, BoxError> {
        DurableSink::commit(&**self, records, views, timers).await
    }
}

impl dyn DurableStore {
    /// The transactional outbox on any backend: the events `f` publishes
    /// (`outbox.publish(event)`, `outbox.publish_batch(aggregate.take_events())`) and the views
    /// it stages (`ViewRepository::stage`, for example an aggregate's own state) are written
    /// in one transaction, all or none; after the commit, every inline handler (sync and
    /// async) runs with the metadata its event was stored with. If `f` fails, or the store
    /// does (a staged view changed since it was read: [`StoreError::ViewConflict`] as the
    /// error's source), nothing is written and nothing runs: the error is returned. Returns
    /// `f`'s value and one report per published event.
    ///
    /// To write rows of your own in the same transaction, use the backend's own call, reached
    /// from this handle: `store.sqlite()` gives the SQLite store, whose `outbox` hands out a
    /// `rusqlite::Transaction`; `store.postgres()` the PostgreSQL one, with a
    /// `tokio_postgres::Transaction`.
    ///
    /// ```
    /// use events::{event_handler, Bus, BoxError, DomainEvent};
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(DomainEvent, Serialize, Deserialize)]
    /// #[event(aggregate = "Library")]
    /// struct CardAdded { #[event(aggregate_id)] library: u32, card: String }
    ///
    /// #[event_handler(durable, name = "search.index_card")]
    /// fn index_card(e: &CardAdded) { /* run later by a worker */ }
    ///
    /// #[event_handler]
    /// async fn count_card(e: &CardAdded) { /* runs after the commit */ }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = events::store::connect("sqlite::memory:").await?; // or postgres://..
    /// let bus = Bus::builder().store(store.clone()).build()?;
    /// let ((), reports) = store
    ///     .outbox(&bus, |outbox| {
    ///         outbox.publish(CardAdded { library: 1, card: "Black Lotus".into() });
    ///         Ok::<_, BoxError>(())
    ///     })
    ///     .await?;
    /// assert!(reports[0].is_ok());
    /// assert_eq!(store.log_head().await?, 1);
    /// # Ok::<(), BoxError>(()) }).unwrap();
    /// ```
    pub async fn outbox<T, E>(
        &self,
        bus: &Bus,
        f: impl FnOnce(&mut Outbox<'_>) -> Result<T, E>,
    ) -> Result<(T, Vec<Report>), E>
    where
        E: From<PublishError>,
    {
        let mut outbox = Outbox::new(bus);
        let value = f(&mut outbox)?;
        let reports = outbox.commit(Some(self as &dyn DurableSink)).await?;
        Ok((value, reports))
    }

    /// The stored timers, in due order: when each is due, who scheduled it, what it fires.
    pub async fn timers(&self) -> Result<Vec<Timer>, StoreError> {
        self.list_timers(None).await
    }

    /// The SQLite backend behind this handle, if it is one: for its calls that take a
    /// `rusqlite::Transaction` (your own SQL in the outbox's transaction).
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub fn sqlite(&self) -> Option<&super::SqliteStore> {
        self.as_any().downcast_ref()
    }

    /// The PostgreSQL backend behind this handle, if it is one: for its calls that take a
    /// `tokio_postgres::Transaction` (your own SQL in the outbox's transaction).
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn postgres(&self) -> Option<&super::PostgresStore> {
        self.as_any().downcast_ref()
    }

    /// Appends one typed event to its aggregate's stream (from `E::AGGREGATE_TYPE` and
    /// `aggregate_id()`, or the event's name when it has none), after whatever the stream
    /// holds.
    pub async fn append_event<E: crate::event::DomainEvent + serde::Serialize>(
        &self,
        event: &E,
        metadata: super::EventMetadata,
    ) -> Result<StoredEvent, StoreError> {
        let new = NewEvent::new(event, metadata)?;
        let aggregate_id = event.aggregate_id().unwrap_or_default();
        let stream = StreamId {
            aggregate_type: E::AGGREGATE_TYPE.unwrap_or(E::NAME),
            aggregate_id: &aggregate_id,
        };
        let mut stored = self.append_to(AppendAt::End(stream), vec![new]).await?;
        Ok(stored.remove(0))
    }

    /// Resets every segment's checkpoint of `handler` so that it receives again every event
    /// after `rewind.after` (0: the whole history): the operator's replay. Takes the claims of
    /// all segments first, as `owner`, and gives them back afterwards, so no running worker
    /// moves a checkpoint meanwhile; refuses, changing nothing, while another worker holds one.
    pub async fn reset_handler(
        &self,
        handler: &str,
        rewind: Rewind,
        owner: &Owner,
    ) -> Result<Discarded, StoreError> {
        let mut claims = Vec::new();
        let mut held = None;
        for segment in 0..self.segments() {
            let request = ClaimRequest {
                segment: SegmentId { handler, segment },
                owner,
                ttl: Duration::from_secs(30),
            };
            match self.claim(request).await? {
                Claimed::Acquired(claim) => claims.push(claim),
                Claimed::HeldBy(lease) => {
                    held = Some(lease);
                    break;
                }
            }
        }
        let mut total = Discarded::default();
        let mut outcome = Ok(());
        if let Some(lease) = held {
            outcome = Err(StoreError::Refused(format!(
                "`{handler}` is being delivered by another worker: {lease}; stop it (or wait for its lease to lapse) and try again"
            )));
        } else {
            for claim in &claims {
                match self.reset_checkpoint(claim, rewind).await {
                    Ok(d) => {
                        total.dead += d.dead;
                        total.retrying += d.retrying;
                        total.held += d.held;
                    }
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
        }
        for claim in &claims {
            self.release(claim).await?;
        }
        outcome.map(|()| total)
    }
}

/// The event store of the event-sourced [`Repository`](crate::sourcing::Repository), of
/// snapshots, projections and commands routed to their aggregate
/// (`Bus::builder().event_store(store.clone())`): whatever [`connect`](super::connect)
/// returned, so an application that switches backends changes only the URL.
///
/// ```
/// use events::store::{EventMetadata, EventStore, NewEvent, StoreError, StreamId};
/// # #[derive(events::DomainEvent, serde::Serialize)] struct Opened { owner: String }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = events::store::connect("sqlite::memory:").await?;
/// let stream = StreamId { aggregate_type: "Account", aggregate_id: "a-1" };
/// let e = NewEvent::new(&Opened { owner: "Ada".into() }, EventMetadata::default())?;
/// store.append(stream.at(0), vec![e.clone()]).await?;
/// let err = store.append(stream.at(0), vec![e]).await.unwrap_err();
/// assert!(matches!(err, StoreError::Conflict { expected: 0, actual: 1, .. }));
/// assert_eq!(store.read_stream(stream).await?.len(), 1);
/// # Ok::<(), StoreError>(()) }).unwrap();
/// ```
impl EventStore for Arc<dyn DurableStore> {
    async fn append(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.append_to(AppendAt::Version(at), events).await
    }

    async fn read_stream(&self, stream: StreamId<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        self.load_stream(stream, 0).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_log(after, limit).await
    }

    async fn read_stream_after(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.load_stream(stream, after).await
    }

    async fn load_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        self.read_snapshot(stream).await
    }

    async fn save_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<bool, StoreError> {
        self.write_snapshot(stream, snapshot).await?;
        Ok(true)
    }
}
