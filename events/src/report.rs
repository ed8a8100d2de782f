//! What a dispatch did: which handlers ran, which failed and why, which were skipped.

use std::any::Any;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::OnceLock;

use crate::cold::drop_cold;
use crate::error::BoxError;

/// The outcome of publishing one event. Handler failures end up here, never in the publisher's
/// control flow.
///
/// ```
/// # use events::{Bus, DomainEvent, event_handler};
/// #[derive(DomainEvent)]
/// struct Shipped { order: u64 }
///
/// #[event_handler]
/// fn reject(e: &Shipped) -> Result<(), String> {
///     Err(format!("order {} is unknown", e.order))
/// }
///
/// let bus = Bus::builder().build().unwrap();
/// let report = bus.publish(&Shipped { order: 9 }).unwrap();
/// assert!(!report.is_ok());
/// assert_eq!(report.failures()[0].handler(), "rust_out::reject");
/// assert_eq!(report.failures()[0].to_string(), "handler `rust_out::reject` failed: order 9 is unknown");
/// ```
#[derive(Debug)]
#[must_use = "a report says which handlers failed"]
pub struct Report {
    /// The event and how many handlers ran: one word, so that with `details` the report is a
    /// pair of scalars, returned in two registers (a dispatch that only counts stores nothing).
    tally: Tally,
    /// Made only when something needs more than a count: a failure, a skip, a follow-up.
    details: Option<Box<Details>>,
}

impl Drop for Report {
    /// Inline and nearly free for a report that is only counters.
    #[inline]
    fn drop(&mut self) {
        if let Some(details) = self.details.take() {
            drop_cold(details);
        }
    }
}

/// The names of the catalog's events, by place: set once, when the catalog is gathered (every
/// report's event index comes from it), so that a report names its event without importing
/// the catalog.
static EVENT_NAMES: OnceLock<Box<[&'static str]>> = OnceLock::new();

/// Called by the catalog when it is gathered, once.
pub(crate) fn name_events(names: Box<[&'static str]>) {
    let _ = EVENT_NAMES.set(names);
}

/// A report's first word: the event's place in the catalog plus one, where its name is read
/// (high half), and how many handlers ran (low half). An event whose walk has a fixed length
/// keeps the tally of a walk in which nothing failed, made once.
///
/// Never zero, so `Result<Report, PublishError>` needs no tag of its own: it is returned in
/// the same two registers as a `Report`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tally(NonZeroU64);

impl Tally {
    pub(crate) fn new(event: usize, ran: usize) -> Self {
        let word = (event as u64 + 1) << 32 | ran as u64;
        Self(NonZeroU64::new(word).expect("the high half is at least 1"))
    }

    /// The event's place in the catalog.
    pub(crate) fn event(self) -> usize {
        ((self.0.get() >> 32) - 1) as usize
    }

    /// `count` more handlers ran.
    #[inline]
    fn add(&mut self, count: u64) {
        self.0 = self.0.saturating_add(count);
    }

    fn ran(self) -> usize {
        (self.0.get() & u64::from(u32::MAX)) as usize
    }
}

#[derive(Debug, Default)]
struct Details {
    failures: Vec<Failure>,
    skipped: Vec<&'static str>,
    follow_ups: Vec<Report>,
}

impl Report {
    #[inline]
    pub(crate) fn new(event: usize) -> Self {
        Self::counted(Tally::new(event, 0))
    }

    /// A report of nothing but its tally: what a walk in which nothing failed returns.
    #[inline]
    pub(crate) fn counted(tally: Tally) -> Self {
        Self {
            tally,
            details: None,
        }
    }

    /// `count` more handlers ran (their failures are recorded apart).
    #[inline]
    pub(crate) fn ran_all(&mut self, count: usize) {
        self.tally.add(count as u64);
    }

    #[inline]
    pub(crate) fn record(&mut self, handler: &'static str, outcome: Result<(), Box<FailureCause>>) {
        self.tally.add(1);
        if let Err(cause) = outcome {
            self.fail(handler, *cause);
        }
    }

    #[cold]
    fn details(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }

    #[cold]
    pub(crate) fn fail(&mut self, handler: &'static str, cause: FailureCause) {
        self.details().failures.push(Failure { handler, cause });
    }

    #[cold]
    pub(crate) fn skip(&mut self, handler: &'static str) {
        self.details().skipped.push(handler);
    }

    /// Adds the report of a follow-up event published by one of this event's handlers.
    #[cold]
    pub(crate) fn follow_up(&mut self, report: Report) {
        self.details().follow_ups.push(report);
    }

    /// `true` when every handler of the event got it and none failed, and the same holds for
    /// every follow-up event its handlers published, all down the chain.
    pub fn is_ok(&self) -> bool {
        self.details.as_deref().is_none_or(|d| {
            d.failures.is_empty() && d.skipped.is_empty() && d.follow_ups.iter().all(Report::is_ok)
        })
    }

    /// The event's name.
    pub fn event(&self) -> &'static str {
        EVENT_NAMES
            .get()
            .expect("a report's event is in the gathered catalog")[self.tally.event()]
    }

    /// How many handlers ran inline (including those that failed).
    pub fn ran(&self) -> usize {
        self.tally.ran()
    }

    /// The handlers that failed, with why, in the order they ran.
    pub fn failures(&self) -> &[Failure] {
        self.details.as_deref().map_or(&[], |d| &d.failures)
    }

    /// Handlers that did not get the event: async handlers under `publish` (use
    /// `dispatch(..).await` or `spawn`). An event that could not be stored for its durable
    /// handlers is never a skip: the publish returned an `Err` and nothing ran.
    pub fn skipped(&self) -> &[&'static str] {
        self.details.as_deref().map_or(&[], |d| &d.skipped)
    }

    /// The reports of follow-up events published by this event's handlers (through a
    /// [`Publisher`](crate::Publisher)), in the order they were published.
    pub fn follow_ups(&self) -> &[Report] {
        self.details.as_deref().map_or(&[], |d| &d.follow_ups)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, 0)
    }
}

impl Report {
    fn render(&self, f: &mut fmt::Formatter<'_>, indent: usize) -> fmt::Result {
        let (failures, skipped) = (self.failures(), self.skipped());
        let handlers = if self.ran() == 1 {
            "handler"
        } else {
            "handlers"
        };
        write!(
            f,
            "`{}`: {} {handlers} ran, {} failed",
            self.event(),
            self.ran(),
            failures.len()
        )?;
        if !skipped.is_empty() {
            // Only async handlers under a sync `publish` are ever skipped.
            write!(
                f,
                ", {} skipped ({}: async, not run by `publish`; use `dispatch(..).await`)",
                skipped.len(),
                skipped.join(", ")
            )?;
        }
        for failure in failures {
            write!(f, "\n{:indent$}  {failure}", "")?;
        }
        for follow_up in self.follow_ups() {
            write!(f, "\n{:indent$}  follow-up ", "")?;
            follow_up.render(f, indent + 2)?;
        }
        Ok(())
    }
}

/// One handler that failed.
#[derive(Debug)]
pub struct Failure {
    handler: &'static str,
    cause: FailureCause,
}

impl Failure {
    /// The handler's name.
    pub fn handler(&self) -> &'static str {
        self.handler
    }

    /// Why it failed.
    pub fn cause(&self) -> &FailureCause {
        &self.cause
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler `{}` failed: {}", self.handler, self.cause)
    }
}

/// A parameter could not be drawn from the context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The resource was not provided to the bus.
    #[error("resource `{0}` was not provided to the bus")]
    MissingResource(&'static str),
    /// Custom extractor failure.
    #[error("{0}")]
    Other(String),
}

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FailureCause {
    /// It returned `Err`.
    #[error("{0}")]
    Error(BoxError),
    /// It panicked; the message of the panic.
    #[error("panicked: {0}")]
    Panic(String),
    /// One of its parameters could not be provided.
    #[error("{0}")]
    Extract(#[from] ExtractError),
    /// A stored payload could not be decoded into the event type (after upcasting). Not
    /// retried: the event goes straight to the dead letters.
    #[error("cannot decode the stored payload: {0}")]
    Decode(String),
    /// The event could not be stored for this durable handler (the store failed, or the
    /// event could not be serialized).
    #[error("the event could not be stored for this durable handler: {0}")]
    NotStored(String),
    /// A chain of follow-up events went deeper than the limit: most likely a cycle.
    #[error(
        "follow-up events nested {0} deep; is there a cycle of handlers publishing each other?"
    )]
    TooDeep(u32),
}

impl FailureCause {
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = match payload.downcast::<String>() {
            Ok(s) => *s,
            Err(payload) => match payload.downcast::<&'static str>() {
                Ok(s) => (*s).to_owned(),
                Err(_) => "(a non-string panic payload)".to_owned(),
            },
        };
        FailureCause::Panic(message)
    }
}
