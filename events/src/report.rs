//! What a dispatch did: which handlers ran, which failed and why, which were skipped.

use std::any::Any;
use std::fmt;

use crate::error::BoxError;
use crate::extract::ExtractError;

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
/// let report = bus.publish(&Shipped { order: 9 });
/// assert!(!report.is_ok());
/// assert_eq!(report.failures()[0].handler(), "rust_out::reject");
/// assert_eq!(report.failures()[0].to_string(), "handler `rust_out::reject` failed: order 9 is unknown");
/// ```
#[derive(Debug)]
#[must_use = "a report says which handlers failed"]
pub struct Report {
    event: &'static str,
    ran: usize,
    failures: Vec<Failure>,
    skipped: Vec<&'static str>,
}

impl Report {
    pub(crate) fn new(event: &'static str) -> Self {
        Self {
            event,
            ran: 0,
            failures: Vec::new(),
            skipped: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn record(&mut self, handler: &'static str, outcome: crate::handler::Outcome) {
        self.ran += 1;
        if let Err(cause) = outcome {
            self.fail(handler, *cause);
        }
    }

    #[cold]
    fn fail(&mut self, handler: &'static str, cause: FailureCause) {
        self.failures.push(Failure { handler, cause });
    }

    pub(crate) fn skip(&mut self, handler: &'static str) {
        self.skipped.push(handler);
    }

    /// `true` when every handler of the event ran and none failed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty() && self.skipped.is_empty()
    }

    /// The event's name.
    pub fn event(&self) -> &'static str {
        self.event
    }

    /// How many handlers ran (including those that failed).
    pub fn ran(&self) -> usize {
        self.ran
    }

    /// The handlers that failed, with why, in the order they ran.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Async handlers that `publish` did not run (use `dispatch(..).await` or `spawn`).
    pub fn skipped(&self) -> &[&'static str] {
        &self.skipped
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: {} handler(s) ran, {} failed",
            self.event,
            self.ran,
            self.failures.len()
        )?;
        if !self.skipped.is_empty() {
            write!(
                f,
                ", {} skipped ({})",
                self.skipped.len(),
                self.skipped.join(", ")
            )?;
        }
        for failure in &self.failures {
            write!(f, "\n  {failure}")?;
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
