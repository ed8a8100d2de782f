//! Handler parameters after the event: resources, metadata, a publisher for follow-ups.

use std::any::{type_name, Any, TypeId};
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tracing::Instrument;

use crate::bus::Bus;
use crate::cold::ColdCell;
use crate::event::DomainEvent;
use crate::handler::{BoxFuture, Outcome};
use crate::meta::{LazyMeta, Meta};
use crate::report::{ExtractError, FailureCause, Report};

/// What a handler call can draw its parameters from.
pub struct Context<'a> {
    pub(crate) bus: &'a Bus,
    pub(crate) meta: &'a LazyMeta<'a>,
    pub(crate) depth: u32,
    /// Whether the dispatch runs the follow-ups its handlers publish (after each handler, in
    /// its own mode); otherwise a [`Publisher`] publishes them at once.
    defer: bool,
    /// Made when a handler first asks for a [`Publisher`].
    follow_ups: ColdCell<Arc<FollowUps>>,
    /// 1 once `follow_ups` is made: a word, so that a walk tests it together with a handler's
    /// outcome in one branch ([`Context::look_after`]).
    publishers: AtomicUsize,
}

impl<'a> Context<'a> {
    /// The context of a dispatch that runs its handlers' follow-ups itself.
    #[inline]
    pub(crate) fn dispatching(bus: &'a Bus, meta: &'a LazyMeta<'a>, depth: u32) -> Self {
        Self {
            bus,
            meta,
            depth,
            defer: true,
            follow_ups: ColdCell::new(),
            publishers: AtomicUsize::new(0),
        }
    }

    /// The context of a call whose follow-ups are published at once (commands, the worker).
    pub(crate) fn new(bus: &'a Bus, meta: &'a LazyMeta<'a>, depth: u32) -> Self {
        Self {
            defer: false,
            ..Self::dispatching(bus, meta, depth)
        }
    }

    /// Whether a handler asked for a publisher (there may be follow-ups to run).
    #[inline]
    pub(crate) fn has_follow_ups(&self) -> bool {
        self.publishers.load(Ordering::Relaxed) != 0
    }

    /// Whether a walk must look after a handler's call: it failed, or some handler asked for a
    /// publisher (there may be follow-ups to run). One test of one word: an `Ok` outcome is a
    /// null pointer.
    #[inline]
    pub(crate) fn look_after(&self, outcome: &Outcome) -> bool {
        let failed = outcome
            .as_ref()
            .map_or_else(|cause| &**cause as *const FailureCause as usize, |()| 0);
        self.publishers.load(Ordering::Relaxed) | failed != 0
    }

    /// The follow-ups published since the last call, if a handler asked for a publisher.
    #[inline]
    pub(crate) fn take_follow_ups(&self) -> Option<Vec<Box<dyn FollowUp>>> {
        let queue = self.follow_ups.get()?;
        Some(queue.take(false))
    }

    /// The last follow-ups; later ones (from a publisher kept past the dispatch) are published
    /// at once.
    pub(crate) fn close_follow_ups(&self) -> Option<Vec<Box<dyn FollowUp>>> {
        let queue = self.follow_ups.get()?;
        Some(queue.take(true))
    }

    /// The envelope metadata of the event being handled.
    pub fn meta(&self) -> &Meta {
        self.meta.get()
    }

    /// The bus that is dispatching.
    pub fn bus(&self) -> &Bus {
        self.bus
    }
}

/// A resource type a handler needs, checked when the bus is built.
#[derive(Clone, Copy)]
pub struct Requirement {
    pub(crate) type_id: fn() -> TypeId,
    pub(crate) type_name: fn() -> &'static str,
    /// For the event store of commands routed to an aggregate: the aggregate's type, so a
    /// missing store is reported as such rather than as a resource type.
    pub(crate) event_store_of: Option<&'static str>,
}

impl Requirement {
    /// The requirement of a resource of type `T`.
    pub const fn resource<T: ?Sized + 'static>() -> Self {
        Self {
            type_id: TypeId::of::<T>,
            type_name: type_name::<T>,
            event_store_of: None,
        }
    }

    /// The requirement of the event store (held as the resource `T`) that commands routed to
    /// `aggregate` load from and append to; a bus built without it reports a missing event
    /// store for that aggregate.
    pub const fn event_store<T: ?Sized + 'static>(aggregate: &'static str) -> Self {
        Self {
            event_store_of: Some(aggregate),
            ..Self::resource::<T>()
        }
    }

    /// The resource's type name.
    pub fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
}

/// A handler parameter that is drawn from the dispatch context.
///
/// Implemented for [`Res<T>`], [`Meta`] and [`Publisher`]; the `#[event_handler]` macro checks
/// every parameter after the event against it at compile time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a handler parameter",
    label = "not an extractor",
    note = "after the event, handler parameters must be `events::Res<T>` (a resource given to `Bus::builder().resource(..)`), `events::Meta` or `events::Publisher`, or implement `events::FromContext`"
)]
pub trait FromContext: Sized {
    /// A resource this parameter needs, checked once at start-up.
    const REQUIRES: Option<Requirement> = None;

    /// Draws the parameter from the context.
    fn from_context(cx: &Context<'_>) -> Result<Self, ExtractError>;
}

/// A shared resource (a service, a client, a repository) given to the bus at start-up:
/// `Bus::builder().resource(Mailer::new())`, taken by a handler as `mailer: Res<Mailer>`.
///
/// Every resource a handler asks for is checked when the bus is built, so a handler never
/// runs without one. It derefs to `T`; clones share it.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use events::{event_handler, Bus, DomainEvent, Res};
///
/// #[derive(DomainEvent)]
/// struct Paid { cents: u64 }
///
/// #[event_handler]
/// fn add_revenue(e: &Paid, revenue: Res<AtomicU64>) {
///     revenue.fetch_add(e.cents, Ordering::Relaxed);
/// }
///
/// let revenue = Arc::new(AtomicU64::new(0));
/// let bus = Bus::builder().shared_resource(Arc::clone(&revenue)).build()?;
/// let _ = bus.publish(&Paid { cents: 250 });
/// assert_eq!(revenue.load(Ordering::Relaxed), 250);
/// # Ok::<(), events::BuildError>(())
/// ```
#[derive(Debug)]
pub struct Res<T: ?Sized>(Arc<T>);

impl<T: ?Sized> Clone for Res<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> Res<T> {
    /// The shared pointer behind the resource.
    pub fn into_arc(self) -> Arc<T> {
        self.0
    }
}

impl<T: ?Sized> Deref for Res<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Send + Sync + 'static> FromContext for Res<T> {
    const REQUIRES: Option<Requirement> = Some(Requirement::resource::<T>());

    fn from_context(cx: &Context<'_>) -> Result<Self, ExtractError> {
        cx.bus
            .resource::<T>()
            .map(Res)
            .ok_or(ExtractError::MissingResource(type_name::<T>()))
    }
}

impl FromContext for Meta {
    fn from_context(cx: &Context<'_>) -> Result<Self, ExtractError> {
        Ok(cx.meta.get().clone())
    }
}

/// Publishes follow-up events from inside a handler, so chains of events work.
///
/// A follow-up is dispatched right after the handler that published it returns, in the mode
/// of the dispatch it is in: under [`Bus::dispatch`] its async handlers run too, under
/// [`Bus::publish`] only its sync ones (its async ones are reported skipped). Its report is
/// part of the outer report ([`Report::follow_ups`]), so a failure or skip anywhere in the
/// chain makes the outer [`Report::is_ok`] `false`. Follow-ups carry the handled event's
/// correlation id, and its id as their causation id. A follow-up that has durable handlers is
/// stored under `dispatch`; under a sync `publish` it cannot be, so its durable handlers are
/// reported failed ([`FailureCause::NotStored`](crate::report::FailureCause::NotStored)), with
/// an error line and a count.
///
/// ```
/// use events::{event_handler, Bus, DomainEvent, Meta, Publisher};
///
/// #[derive(DomainEvent)]
/// struct FormSubmitted { form: u32 }
/// #[derive(DomainEvent)]
/// struct RecordCreated { record: u64 }
///
/// #[event_handler(publishes(RecordCreated))]
/// fn create_record(e: &FormSubmitted, publisher: Publisher) {
///     publisher.publish(RecordCreated { record: u64::from(e.form) * 10 });
/// }
///
/// #[event_handler]
/// fn index(e: &RecordCreated, meta: Meta) {
///     assert_eq!(e.record, 30);
///     assert!(meta.causation_id().is_some()); // the form's event id
/// }
///
/// let bus = Bus::builder().build()?;
/// let report = bus.publish(&FormSubmitted { form: 3 })?;
/// assert!(report.is_ok());
/// assert_eq!(report.follow_ups()[0].to_string(), "`RecordCreated`: 1 handler ran, 0 failed");
/// # Ok::<(), events::BoxError>(())
/// ```
#[derive(Clone)]
pub struct Publisher {
    bus: Bus,
    cause: Meta,
    depth: u32,
    queue: Option<Arc<FollowUps>>,
}

impl Publisher {
    /// Publishes a follow-up event (see the type's documentation for when its handlers run).
    /// Outside the dispatch (a publisher kept by a task), its sync handlers run at once.
    pub fn publish<E: DomainEvent>(&self, event: E) {
        let pending: Box<dyn FollowUp> = Box::new(Pending {
            event,
            publisher: crate::trace::current(),
        });
        let pending = match &self.queue {
            Some(queue) => match queue.push(pending) {
                Ok(()) => return,
                Err(pending) => pending,
            },
            None => pending,
        };
        // Every failure or skip in it was logged by the bus.
        let _ = pending.publish(&self.bus, &self.cause, self.depth + 1);
    }

    /// Dispatches a follow-up event now, to its sync and async handlers (see
    /// [`Bus::dispatch`]), and returns its report to the caller: for async handlers, command
    /// handlers in particular, that act on the outcome. The report is the caller's to act on;
    /// it is not part of the outer report.
    pub async fn dispatch<E: DomainEvent>(&self, event: &E) -> Report {
        self.bus
            .dispatch_caused(event, &self.cause, self.depth + 1)
            .await
    }

    /// The metadata of the event being handled, which caused the follow-ups.
    pub fn cause(&self) -> &Meta {
        &self.cause
    }
}

impl FromContext for Publisher {
    fn from_context(cx: &Context<'_>) -> Result<Self, ExtractError> {
        let queue = cx.defer.then(|| {
            cx.publishers.store(1, Ordering::Relaxed);
            Arc::clone(cx.follow_ups.get_or_init(Arc::default))
        });
        Ok(Publisher {
            bus: cx.bus.clone(),
            cause: cx.meta.get().clone(),
            depth: cx.depth,
            queue,
        })
    }
}

/// The follow-ups published during one dispatch, waiting for their handler to return.
pub(crate) struct FollowUps(Mutex<Queue>);

struct Queue {
    /// `false` once the dispatch is over: later follow-ups are published at once.
    open: bool,
    pending: Vec<Box<dyn FollowUp>>,
}

impl Default for FollowUps {
    fn default() -> Self {
        Self(Mutex::new(Queue {
            open: true,
            pending: Vec::new(),
        }))
    }
}

impl FollowUps {
    fn push(&self, pending: Box<dyn FollowUp>) -> Result<(), Box<dyn FollowUp>> {
        let mut queue = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !queue.open {
            return Err(pending);
        }
        queue.pending.push(pending);
        Ok(())
    }

    fn take(&self, close: bool) -> Vec<Box<dyn FollowUp>> {
        let mut queue = self.0.lock().unwrap_or_else(|p| p.into_inner());
        queue.open &= !close;
        std::mem::take(&mut queue.pending)
    }
}

/// A follow-up event, owned until its handlers run.
pub(crate) trait FollowUp: Send {
    /// Runs its sync handlers.
    fn publish(&self, bus: &Bus, cause: &Meta, depth: u32) -> Report;
    /// Runs its sync and async handlers.
    fn dispatch<'a>(&'a self, bus: &'a Bus, cause: &'a Meta, depth: u32) -> BoxFuture<'a, Report>;
}

struct Pending<E> {
    event: E,
    /// The span of the handler that published it (when traced): the follow-up's spans are its
    /// children, so a chain is one trace.
    publisher: tracing::Span,
}

impl<E: DomainEvent> FollowUp for Pending<E> {
    fn publish(&self, bus: &Bus, cause: &Meta, depth: u32) -> Report {
        let _in_publisher = self.publisher.enter();
        bus.publish_caused(&self.event, cause, depth)
    }

    fn dispatch<'a>(&'a self, bus: &'a Bus, cause: &'a Meta, depth: u32) -> BoxFuture<'a, Report> {
        let publishing = bus.dispatch_caused(&self.event, cause, depth);
        Box::pin(publishing.instrument(self.publisher.clone()))
    }
}

pub(crate) type AnyResource = Arc<dyn Any + Send + Sync>;
