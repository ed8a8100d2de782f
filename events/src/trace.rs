//! The bus's `tracing` spans, named and shaped after OpenTelemetry's messaging semantic
//! conventions, so a collector (through `tracing-opentelemetry`) or a log reader sees the
//! usual fields.
//!
//! Span names are the operation: `publish` (an event is published; its handlers' spans are
//! its children), `process` (one handler call, of an event or a command), `receive` (the
//! worker took stored events for a durable handler; that handler's `process` span is its
//! child). Every span carries `messaging.system = "events"`, `messaging.operation`,
//! `messaging.destination.name` (the event's or command's name), `messaging.message.id` (its
//! id) and `messaging.message.conversation_id` (the correlation id shared by a whole chain),
//! plus `events.causation_id` (the event whose handler published this one), `events.handler`,
//! and for stored events `events.position` and `events.aggregate` (`Type/id`).
//!
//! A follow-up's `publish` span is a child of the `process` span of the handler that published
//! it, so a chain is one trace. A durable delivery starts a trace of its own (the publisher's
//! spans ended long ago, maybe in another process): its `receive` span carries the stored
//! correlation and causation ids, which join it to the chain that stored the event.
//!
//! All spans are at DEBUG level: without a subscriber interested in them the bus takes paths
//! that make none, and the ids are only read when a span is enabled.

use std::fmt;

use tracing::field::{display, Empty};
use tracing::Span;

use crate::meta::{LazyMeta, Meta};

/// `messaging.system` of every span.
const SYSTEM: &str = "events";

/// A DEBUG span named after its `messaging.operation`, with the fields every span here has
/// (then `extra` ones); the envelope's ids are recorded only when the span is enabled, so
/// `meta` is evaluated only then.
macro_rules! message_span {
    ($(parent: $parent:expr,)? $operation:literal, $kind:literal, $destination:expr, $meta:expr, $($extra:tt)*) => {{
        let span = tracing::debug_span!(
            $(parent: $parent,)?
            $operation,
            otel.kind = $kind,
            messaging.system = SYSTEM,
            messaging.operation = $operation,
            messaging.destination.name = $destination,
            messaging.message.id = Empty,
            messaging.message.conversation_id = Empty,
            events.causation_id = Empty,
            events.aggregate = Empty,
            $($extra)*
        );
        if !span.is_disabled() {
            record_envelope(&span, $meta);
        }
        span
    }};
}

/// The span of publishing `event`: the `process` spans of its handlers are its children.
pub(crate) fn publish(event: &'static str, meta: &LazyMeta<'_>) -> Span {
    message_span!("publish", "producer", event, meta.get(),)
}

/// The span of one event handler call.
pub(crate) fn process(event: &'static str, handler: &'static str, meta: &LazyMeta<'_>) -> Span {
    process_message(event, handler, || meta.get())
}

/// The span of one command handler call: a `process` span whose destination is the command.
pub(crate) fn command(command: &'static str, handler: &'static str, meta: &Meta) -> Span {
    process_message(command, handler, || meta)
}

/// A `process` span; `meta` is only asked for when the span is enabled.
fn process_message<'m>(
    destination: &'static str,
    handler: &'static str,
    meta: impl FnOnce() -> &'m Meta,
) -> Span {
    message_span!(
        "process",
        "consumer",
        destination,
        meta(),
        events.handler = handler,
        events.position = Empty,
    )
}

/// The root span of one durable delivery (`count` stored events, described by `meta`: the
/// last of them) by the worker to `handler`; the handler's `process` span is its child.
#[cfg(feature = "durable")]
pub(crate) fn receive(handler: &'static str, segment: u32, count: usize, meta: &Meta) -> Span {
    message_span!(
        parent: None,
        "receive",
        "consumer",
        meta.event_name(),
        meta,
        messaging.batch.message_count = count,
        events.handler = handler,
        events.segment = segment,
        events.position = Empty,
    )
}

/// The span a follow-up published now should be published in: the current one (the
/// publishing handler's `process` span), or none when no subscriber wants DEBUG spans.
pub(crate) fn current() -> Span {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        Span::current()
    } else {
        Span::none()
    }
}

/// Records the ids, and for a stored event its place, on an enabled span.
fn record_envelope(span: &Span, meta: &Meta) {
    span.record("messaging.message.id", display(meta.event_id()));
    span.record(
        "messaging.message.conversation_id",
        display(meta.correlation_id()),
    );
    if let Some(cause) = meta.causation_id() {
        span.record("events.causation_id", display(cause));
    }
    if let (Some(kind), Some(id)) = (meta.aggregate_type(), meta.aggregate_id()) {
        span.record("events.aggregate", display(Aggregate(kind, id)));
    }
    if let Some(position) = meta.position() {
        span.record("events.position", position);
    }
}

/// `Type/id`, written without an allocation.
struct Aggregate<'a>(&'a str, &'a str);

impl fmt::Display for Aggregate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}
