//! Errors of start-up; handler errors live in `report.rs`.

use std::fmt;

/// The error type handlers may return, boxed: any `E: Into<BoxError>` works in
/// `Result<(), E>`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Building a [`Bus`](crate::bus::Bus) found problems; every one of them is listed.
///
/// Its `Debug` is its message too, so `fn main() -> Result<(), BuildError>` and `.expect(..)`
/// print the problems readably.
#[derive(thiserror::Error)]
#[error("{}", render(.problems))]
pub struct BuildError {
    problems: Vec<Problem>,
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl BuildError {
    pub(crate) fn new(problems: Vec<Problem>) -> Self {
        Self { problems }
    }

    /// Every problem found, in a stable order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

fn render(problems: &[Problem]) -> String {
    let mut out = format!(
        "the event bus cannot start: {} problem{} found",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  - ");
        out.push_str(&p.to_string());
    }
    out
}

/// One problem found while building a [`Bus`](crate::bus::Bus).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// Two handlers share a name; names identify handlers in logs, metrics and the store.
    #[error("handler name `{name}` is used {} times ({}); give each a unique `#[event_handler(name = \"..\")]`", .locations.len(), .locations.join(", "))]
    DuplicateHandlerName {
        /// The name in question.
        name: String,
        /// Where each handler with that name is defined.
        locations: Vec<String>,
    },
    /// Two event types share a name; the name identifies the event in the store.
    #[error("event name `{name}` is used by several types ({types}); give each a unique `#[event(name = \"..\")]`")]
    DuplicateEventName {
        /// The name in question.
        name: String,
        /// The Rust types using it.
        types: String,
    },
    /// A handler asks for a resource that was not provided to the builder.
    #[error("handler `{handler}` ({location}) needs resource `{resource}`; provide it with `Bus::builder().resource(..)`")]
    MissingResource {
        /// The handler's name.
        handler: String,
        /// Where the handler is defined.
        location: String,
        /// The resource's type name.
        resource: String,
    },
    /// The same resource type was provided twice; the second would silently win.
    #[error("resource `{resource}` is provided {count} times; provide each resource type once")]
    DuplicateResource {
        /// The resource's type name.
        resource: String,
        /// How many times it was provided.
        count: usize,
    },
    /// A handler required with `Bus::builder().require_handlers(..)` is not linked.
    #[error("handler `{name}` is required but not linked into this program; if it lives in another crate, add `events::link!(that_crate)` to the binary")]
    MissingHandler {
        /// The required name.
        name: String,
    },
    /// A crate required with `Bus::builder().require_crates(..)` contributes no handler.
    #[error("crate `{krate}` is required to contribute handlers but none is linked (crates with handlers: {linked}); add `events::link!({krate})` to the binary")]
    MissingCrate {
        /// The required crate.
        krate: String,
        /// The crates that did contribute handlers.
        linked: String,
    },
    /// A command has no handler linked into the program.
    #[error("command `{command}` ({type_name}) has no handler; write a `#[command_handler]` for it, or link the crate that holds it with `events::link!`")]
    MissingCommandHandler {
        /// The command's name.
        command: String,
        /// The command's Rust type.
        type_name: String,
    },
    /// A command routed to its aggregate, on a bus built without an event store.
    #[error("command `{command}` is routed to aggregate `{aggregate}`, which needs an event store: call `Bus::builder().event_store(store)`")]
    MissingEventStore {
        /// The command's name.
        command: String,
        /// The aggregate's type (`EventSourced::TYPE`).
        aggregate: String,
    },
    /// A command has several handlers; a command goes to exactly one.
    #[error("command `{command}` has {} handlers ({}); a command goes to exactly one handler, remove all but one", .handlers.len(), .handlers.join(", "))]
    DuplicateCommandHandler {
        /// The command's name.
        command: String,
        /// Each handler's name and location.
        handlers: Vec<String>,
    },
}

/// Publishing an event that has durable handlers did not store it: nothing was stored and no
/// handler ran, so the caller can retry, roll back or fail its operation. Handler failures are
/// never this error; they are in the [`Report`](crate::report::Report) of a publish that
/// succeeded.
///
/// Boxed, so `Result<Report, PublishError>` is as small as a [`Report`](crate::report::Report).
///
/// Dropping one is a test and a cold call, so that a publish's caller pays almost nothing for
/// the `Result` (the drop of the error's contents is out of line).
pub struct PublishError(Option<Box<NotPublished>>);

impl Drop for PublishError {
    #[inline]
    fn drop(&mut self) {
        if let Some(kind) = self.0.take() {
            crate::cold::drop_cold(kind);
        }
    }
}

impl fmt::Debug for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.kind(), f)
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(self.kind())
    }
}

impl PublishError {
    pub(crate) fn new(kind: NotPublished) -> Self {
        Self(Some(Box::new(kind)))
    }

    /// Why the event was not published.
    pub fn kind(&self) -> &NotPublished {
        self.0.as_deref().expect("taken only when dropped")
    }

    /// The name of the event that was not published.
    pub fn event(&self) -> &'static str {
        match self.kind() {
            NotPublished::NoStore { event, .. }
            | NotPublished::NeedsAwait { event, .. }
            | NotPublished::NotStored { event, .. } => event,
        }
    }
}

/// Why [`PublishError`]: each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotPublished {
    /// The event has durable handlers and the bus has no store to append it to.
    #[error("`{event}` has durable handlers{} but the bus has no store; nothing was published: give the bus one with `Bus::builder().store(events::store::connect(url).await?)`", listed(.handlers))]
    NoStore {
        /// The event's name.
        event: &'static str,
        /// Its durable handlers.
        handlers: Vec<&'static str>,
    },
    /// The event has durable handlers and was published with the sync `publish`, which cannot
    /// wait for a store (on any backend).
    #[error("`{event}` has durable handlers{}, which a sync `publish` cannot store; nothing was published: use `bus.dispatch(&event).await` or the store's `outbox`", listed(.handlers))]
    NeedsAwait {
        /// The event's name.
        event: &'static str,
        /// Its durable handlers.
        handlers: Vec<&'static str>,
    },
    /// The store failed to append the event (or it could not be serialized).
    #[error("cannot store `{event}` for its durable handlers; nothing was published: {source}")]
    NotStored {
        /// The event's name.
        event: &'static str,
        /// The store's (or serializer's) error.
        source: BoxError,
    },
}

/// ` (a, b)`, or nothing for no names.
fn listed(names: &[&str]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}
