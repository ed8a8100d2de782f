//! The bus: built once at start-up from the link-time catalog, then dispatches events to their
//! own handler lists.
//!
//! One file per walk, with what they share here (the bus, the start of every dispatch, a
//! handler's outcome, metrics and logs):
//! - `publish`: the sync walk (`publish`), bare, plain or full;
//! - `dispatch`: the async walk (`dispatch(..).await`), with `walk` its plain path as one future;
//! - `store`: the store-backed walk of events with durable handlers (storing on publish,
//!   timers, the sink's records);
//! - `deliver`: the worker's one call, a durable handler run on stored events;
//! - `builder`: start-up, where the catalog is checked.

use std::any::{Any, TypeId};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};

use crate::catalog::{catalog, Catalog};
use crate::error::{NotPublished, PublishError};
use crate::event::DomainEvent;
use crate::extract::{AnyResource, Context};
use crate::handler::Outcome;
use crate::meta::{LazyMeta, Meta};
use crate::registry::{EventState, Slot};
use crate::report::{FailureCause, Report};
use crate::sink::DurableSink;

mod builder;
#[cfg(feature = "durable")]
mod deliver;
mod dispatch;
mod publish;
mod store;
mod walk;

pub use builder::BusBuilder;
#[cfg(feature = "durable")]
pub(crate) use deliver::DurableTarget;

/// A test tap: sees every event published through the bus. `events::testing::Capture`
/// implements it (in `capture`, above the bus), so the bus never names it.
pub(crate) trait Tap: Send + Sync {
    /// Sees `event` (named `name`) with its metadata; `true` keeps it from the handlers.
    fn observe(&self, name: &'static str, event: &dyn Any, meta: &Meta) -> bool;
}

/// How deep follow-up events may nest before the chain is cut and reported as a failure.
pub const MAX_DEPTH: u32 = 64;

/// The event bus. Cheap to clone: clones share one set of resources.
///
/// ```
/// use events::{Bus, DomainEvent, Res, event_handler};
///
/// struct Mailer;
/// impl Mailer { fn send(&self, to: &str) -> Result<(), std::io::Error> { Ok(()) } }
///
/// #[derive(DomainEvent)]
/// struct UserRegistered { email: String }
///
/// #[event_handler]
/// async fn welcome(e: &UserRegistered, mailer: Res<Mailer>) -> Result<(), std::io::Error> {
///     mailer.send(&e.email)
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = Bus::builder().resource(Mailer).build()?;
/// let report = bus.dispatch(&UserRegistered { email: "ada@example.com".into() }).await?;
/// assert!(report.is_ok());
/// # Ok::<(), events::BoxError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    resources: Vec<Resource>,
    /// Per catalog event: the `events_dispatched_total` counter; empty without a recorder.
    events: Box<[Counter]>,
    /// Per catalog handler (by global index).
    handlers: Box<[HandlerMetrics]>,
    record_durations: bool,
    /// The handlers this bus runs, when built with `serve_module` (`None`: all of them).
    subset: Option<Subset>,
    /// Test capture (`events::testing::Capture`): sees every published event.
    tap: Option<Arc<dyn Tap>>,
    /// Where events with durable handlers are stored when published.
    sink: Option<Arc<dyn DurableSink>>,
    /// No capture, no timing, no subset: `publish` may take its plain path.
    plain: bool,
    /// Plain, and no metrics recorder (so nothing to count): `publish` may take its bare walk
    /// inline.
    bare: bool,
}

/// The handlers of a bus built with [`BusBuilder::serve_module`]: each event type's handler
/// slices filtered once, on its first dispatch on this bus, so dispatch checks nothing per
/// handler. Such a bus always takes the full paths (the plain ones read the unfiltered slices).
struct Subset {
    /// Per catalog handler: whether this bus runs it.
    served: Box<[bool]>,
    /// Per catalog event: its filtered `EventState<E>`.
    states: Box<[OnceLock<Box<dyn Any + Send + Sync>>]>,
}

impl Subset {
    fn state<E: DomainEvent>(&self, all: &EventState<E>) -> &EventState<E> {
        self.states[all.index]
            .get_or_init(|| Box::new(all.served(&self.served)))
            .downcast_ref()
            .expect("a subset state has its event's type")
    }
}

impl Inner {
    /// Counts a dispatch of the catalog event `index`.
    #[inline]
    fn count(&self, index: usize) {
        if let Some(counter) = self.events.get(index) {
            counter.increment(1);
        }
    }
}

struct Resource {
    type_id: TypeId,
    type_name: &'static str,
    value: AnyResource,
}

struct HandlerMetrics {
    failures: Counter,
    duration: Histogram,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field(
                "resources",
                &self
                    .inner
                    .resources
                    .iter()
                    .map(|r| r.type_name)
                    .collect::<Vec<_>>(),
            )
            .field("handlers", &self.inner.handlers.len())
            .finish()
    }
}

impl Bus {
    /// The resource of type `T`, if it was provided.
    pub fn resource<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let wanted = TypeId::of::<T>();
        let found = self.inner.resources.iter().find(|r| r.type_id == wanted)?;
        Arc::clone(&found.value).downcast::<T>().ok()
    }

    /// The catalog this bus was built from.
    pub fn catalog(&self) -> &'static Catalog {
        catalog()
    }

    /// The metadata of a follow-up of `cause` (made when first asked for), or the report of a
    /// chain cut for being too deep.
    fn follow_up_meta<'a, E: DomainEvent>(
        event: &'a E,
        cause: &'a Meta,
        depth: u32,
    ) -> Result<impl Fn() -> Meta + Sync + 'a, Report> {
        if depth > MAX_DEPTH {
            return Err(too_deep::<E>(depth));
        }
        Ok(move || cause.caused_by(Meta::of(event)))
    }

    /// The start of every dispatch: a test capture may take the event; otherwise it is counted
    /// and its handlers are looked up.
    #[inline]
    fn begin<E: DomainEvent>(&self, event: &E, meta: &LazyMeta) -> Option<&EventState<E>> {
        if let Some(tap) = &self.inner.tap {
            if tap.observe(E::NAME, event, meta.get()) {
                return None;
            }
        }
        let state = E::Slot::registry().state();
        self.inner.count(state.index);
        Some(match &self.inner.subset {
            None => state,
            Some(subset) => subset.state(state),
        })
    }

    /// The clock for one dispatch's handler durations (stopped unless `record_durations`).
    fn clock(&self) -> Clock {
        Clock::start(self.inner.record_durations)
    }

    #[inline]
    fn finish(&self, target: Target, elapsed: Option<Duration>, outcome: Outcome) -> Outcome {
        if let Some(elapsed) = elapsed {
            self.inner.handlers[target.index].duration.record(elapsed);
        }
        if let Err(cause) = &outcome {
            self.failed(target, cause);
        }
        outcome
    }

    #[cold]
    fn failed(&self, target: Target, cause: &FailureCause) {
        self.inner.handlers[target.index].failures.increment(1);
        match cause {
            FailureCause::Panic(_) => {
                tracing::error!(
                    event = target.event,
                    handler = target.handler,
                    "handler panicked: {cause}"
                )
            }
            _ => tracing::warn!(
                event = target.event,
                handler = target.handler,
                "handler failed: {cause}"
            ),
        }
    }
}

/// An empty report of an event of type `E`.
#[inline]
fn report_of<E: DomainEvent>() -> Report {
    Report::new(E::Slot::registry().state().index)
}

/// An event that was not published: logged at error level and counted, as the caller gets it.
#[cold]
pub(crate) fn refused(kind: NotPublished) -> PublishError {
    let error = PublishError::new(kind);
    tracing::error!(event = error.event(), "{error}");
    metrics::counter!("events_not_published_total", "event" => error.event()).increment(1);
    error
}

/// Handler durations from one clock read per handler: a handler's end is the next one's start.
struct Clock(Option<Instant>);

impl Clock {
    /// A running clock, or a stopped one that never reads the time.
    fn start(on: bool) -> Self {
        Clock(on.then(Instant::now))
    }

    /// The time since the last lap (or the start), if running.
    #[inline]
    fn lap(&mut self) -> Option<Duration> {
        let start = self.0?;
        let now = Instant::now();
        self.0 = Some(now);
        Some(now - start)
    }
}

/// Which handler a call is for: its names for logs and its index for metrics.
#[derive(Clone, Copy)]
struct Target {
    event: &'static str,
    handler: &'static str,
    index: usize,
}

impl Target {
    #[inline]
    fn of<E: DomainEvent>(handler: &'static str, index: usize) -> Self {
        Self {
            event: E::NAME,
            handler,
            index,
        }
    }
}

fn handler_span(target: Target, cx: &Context<'_>) -> tracing::Span {
    crate::trace::process(target.event, target.handler, cx.meta)
}

fn too_deep<E: DomainEvent>(depth: u32) -> Report {
    tracing::error!(
        event = E::NAME,
        depth,
        "follow-up event chain too deep; not dispatched"
    );
    let mut report = report_of::<E>();
    report.fail("*", FailureCause::TooDeep(depth));
    report
}
