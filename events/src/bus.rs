//! The bus: built once at start-up from the link-time catalog, then dispatches events to their
//! own handler lists.

use std::any::{type_name, Any, TypeId};
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};
use tracing::Instrument;

use crate::__private::Slot;
use crate::catalog::{catalog, Catalog, HandlerInfo};
use crate::error::{BuildError, Problem};
use crate::extract::{AnyResource, Context};
use crate::handler::{Call, Handler, Outcome};
use crate::meta::{LazyMeta, Meta};
use crate::registry::EventState;
use crate::report::{FailureCause, Report};
use crate::DomainEvent;

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
/// let report = bus.dispatch(&UserRegistered { email: "ada@example.com".into() }).await;
/// assert!(report.is_ok());
/// # Ok::<(), events::BuildError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    resources: Vec<Resource>,
    /// Per catalog event: the `events_dispatched_total` counter.
    events: Box<[Counter]>,
    /// Per catalog handler (by global index).
    handlers: Box<[HandlerMetrics]>,
    record_durations: bool,
    /// Per catalog handler: whether this bus runs it (`None`: all of them).
    serves: Option<Box<[bool]>>,
    /// Test capture (`events::testing::Capture`): sees every published event.
    tap: Option<crate::testing::Capture>,
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

/// Configures a [`Bus`]: the resources handlers ask for. Handlers need no registration.
#[must_use]
pub struct BusBuilder {
    resources: Vec<Resource>,
    record_durations: bool,
    /// Module paths whose handlers the bus serves (empty: every linked handler).
    serve: Vec<&'static str>,
    pub(crate) tap: Option<crate::testing::Capture>,
}

impl Bus {
    /// Starts building a bus.
    pub fn builder() -> BusBuilder {
        BusBuilder {
            resources: Vec::new(),
            record_durations: false,
            serve: Vec::new(),
            tap: None,
        }
    }

    /// Runs the sync handlers of `event` inline, in order, and reports what happened.
    ///
    /// Needs no async runtime. Async handlers are not run here: they are listed in
    /// [`Report::skipped`] (so [`Report::is_ok`] is `false`) and logged at warn level. Use
    /// [`dispatch`](Self::dispatch) or [`spawn`](Self::spawn) for events that have async handlers.
    pub fn publish<E: DomainEvent>(&self, event: &E) -> Report {
        self.publish_in(event, &LazyMeta::new::<E>(None), 0)
    }

    /// Like [`publish`](Self::publish), with the event's metadata given (an id and time of
    /// the caller's, for example one read from a store).
    pub fn publish_with<E: DomainEvent>(&self, event: &E, meta: Meta) -> Report {
        self.publish_in(event, &LazyMeta::given(meta), 0)
    }

    /// Runs every sync and async handler of `event`, one after the other in order, and reports
    /// what happened.
    pub async fn dispatch<E: DomainEvent>(&self, event: &E) -> Report {
        self.dispatch_in(event, LazyMeta::new::<E>(None), 0).await
    }

    /// Like [`dispatch`](Self::dispatch), with the event's metadata given.
    pub async fn dispatch_with<E: DomainEvent>(&self, event: &E, meta: Meta) -> Report {
        self.dispatch_in(event, LazyMeta::given(meta), 0).await
    }

    /// Dispatches an owned event on the current tokio runtime and returns at once.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    #[cfg(feature = "tokio")]
    pub fn spawn<E: DomainEvent>(&self, event: E) -> tokio::task::JoinHandle<Report> {
        let bus = self.clone();
        tokio::spawn(async move { bus.dispatch(&event).await })
    }

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

    pub(crate) fn publish_caused<E: DomainEvent>(
        &self,
        event: &E,
        cause: Meta,
        depth: u32,
    ) -> Report {
        if depth > MAX_DEPTH {
            return too_deep::<E>(depth);
        }
        self.publish_in(event, &LazyMeta::new::<E>(Some(cause)), depth)
    }

    pub(crate) async fn dispatch_caused<E: DomainEvent>(
        &self,
        event: &E,
        cause: Meta,
        depth: u32,
    ) -> Report {
        if depth > MAX_DEPTH {
            return too_deep::<E>(depth);
        }
        self.dispatch_in(event, LazyMeta::new::<E>(Some(cause)), depth)
            .await
    }

    /// The start of every dispatch: a test capture may take the event; otherwise it is counted
    /// and its handlers are looked up.
    #[inline]
    fn begin<E: DomainEvent>(&self, event: &E, meta: &LazyMeta) -> Option<&'static EventState<E>> {
        if let Some(tap) = &self.inner.tap {
            if tap.observe(event, meta.get()) {
                return None;
            }
        }
        let state = E::Slot::registry().state();
        self.inner.events[state.index].increment(1);
        Some(state)
    }

    fn publish_in<E: DomainEvent>(&self, event: &E, meta: &LazyMeta, depth: u32) -> Report {
        let Some(state) = self.begin(event, meta) else {
            return Report::new(E::NAME);
        };
        let cx = Context {
            bus: self,
            meta,
            depth,
        };
        let mut report = Report::new(E::NAME);
        let (traced, mut clock) = (tracing::level_enabled!(tracing::Level::DEBUG), self.clock());
        for (i, handler) in state.handlers.iter().enumerate() {
            if !self.serves(state.base + i) {
                continue;
            }
            match handler.call {
                Call::Sync(call) => {
                    let target = Target::of::<E>(handler, state.base + i);
                    let outcome =
                        self.run_sync(target, &cx, traced, &mut clock, || call(event, &cx));
                    report.record(handler.name, outcome);
                }
                Call::Durable(_) | Call::DurableBatch(_) => {}
                Call::Async(_) => skipped(&mut report, E::NAME, handler.name),
            }
        }
        report
    }

    async fn dispatch_in<E: DomainEvent>(&self, event: &E, meta: LazyMeta, depth: u32) -> Report {
        let Some(state) = self.begin(event, &meta) else {
            return Report::new(E::NAME);
        };
        let cx = Context {
            bus: self,
            meta: &meta,
            depth,
        };
        let mut report = Report::new(E::NAME);
        let (traced, mut clock) = (tracing::level_enabled!(tracing::Level::DEBUG), self.clock());
        for (i, handler) in state.handlers.iter().enumerate() {
            if !self.serves(state.base + i) {
                continue;
            }
            let target = Target::of::<E>(handler, state.base + i);
            let outcome = match handler.call {
                Call::Sync(call) => {
                    self.run_sync(target, &cx, traced, &mut clock, || call(event, &cx))
                }
                Call::Async(call) => {
                    self.run_async(target, &cx, &mut clock, call(event, &cx))
                        .await
                }
                Call::Durable(_) | Call::DurableBatch(_) => continue,
            };
            report.record(handler.name, outcome);
        }
        report
    }

    /// Whether this bus runs the catalog handler at `index` (see [`BusBuilder::serve_module`]).
    #[inline]
    fn serves(&self, index: usize) -> bool {
        self.inner.serves.as_ref().is_none_or(|s| s[index])
    }

    /// The clock for one dispatch's handler durations (stopped unless `record_durations`).
    fn clock(&self) -> Clock {
        Clock::start(self.inner.record_durations)
    }

    /// Calls a sync handler, catching a panic; inside its span when DEBUG traces are on.
    #[inline]
    fn run_sync(
        &self,
        target: Target,
        cx: &Context<'_>,
        traced: bool,
        clock: &mut Clock,
        call: impl FnOnce() -> Outcome,
    ) -> Outcome {
        let guarded = || {
            catch_unwind(AssertUnwindSafe(call))
                .unwrap_or_else(|p| Err(Box::new(FailureCause::from_panic(p))))
        };
        if traced {
            let span = handler_span(target, cx);
            let _entered = span.enter();
            let outcome = guarded();
            self.finish(target, clock.lap(), outcome)
        } else {
            self.finish(target, clock.lap(), guarded())
        }
    }

    /// Awaits an async handler's future inside its span, catching a panic.
    pub(crate) async fn run_async(
        &self,
        target: Target,
        cx: &Context<'_>,
        clock: &mut Clock,
        mut future: crate::handler::BoxFuture<'_, Outcome>,
    ) -> Outcome {
        let span = handler_span(target, cx);
        let guarded =
            poll_fn(
                |task| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(task))) {
                    Ok(poll) => poll,
                    Err(panic) => Poll::Ready(Err(Box::new(FailureCause::from_panic(panic)))),
                },
            );
        let outcome = guarded.instrument(span.clone()).await;
        let _entered = span.enter();
        self.finish(target, clock.lap(), outcome)
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

#[cold]
fn skipped(report: &mut Report, event: &'static str, handler: &'static str) {
    tracing::warn!(
        event,
        handler,
        "async handler skipped by `publish`; use `dispatch(..).await` or `spawn`"
    );
    report.skip(handler);
}

/// Handler durations from one clock read per handler: a handler's end is the next one's start.
pub(crate) struct Clock(Option<Instant>);

impl Clock {
    /// A running clock, or a stopped one that never reads the time.
    pub(crate) fn start(on: bool) -> Self {
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
pub(crate) struct Target {
    pub(crate) event: &'static str,
    pub(crate) handler: &'static str,
    pub(crate) index: usize,
}

impl Target {
    fn of<E: DomainEvent>(handler: &Handler<E>, index: usize) -> Self {
        Self {
            event: E::NAME,
            handler: handler.name,
            index,
        }
    }
}

fn handler_span(target: Target, cx: &Context<'_>) -> tracing::Span {
    let span = tracing::debug_span!(
        "event_handler",
        event = target.event,
        handler = target.handler,
        event_id = tracing::field::Empty
    );
    if !span.is_disabled() {
        span.record("event_id", tracing::field::display(cx.meta().event_id()));
    }
    span
}

fn too_deep<E: DomainEvent>(depth: u32) -> Report {
    tracing::error!(
        event = E::NAME,
        depth,
        "follow-up event chain too deep; not dispatched"
    );
    let mut report = Report::new(E::NAME);
    report.record("*", Err(Box::new(FailureCause::TooDeep(depth))));
    report
}

impl BusBuilder {
    /// Provides a resource that handlers take as `Res<T>`.
    pub fn resource<T: Send + Sync + 'static>(self, value: T) -> Self {
        self.shared_resource(Arc::new(value))
    }

    /// Provides a resource that is already shared.
    pub fn shared_resource<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        let value: Arc<dyn Any + Send + Sync> = value;
        self.resources.push(Resource {
            type_id: TypeId::of::<T>(),
            type_name: type_name::<T>(),
            value,
        });
        self
    }

    /// Whether to time every inline handler call for the `events_handler_duration_seconds`
    /// histogram (default: off). Timing costs one clock read per handler call, which is most of
    /// the cost of dispatching to a small handler (see `benches/`). Durable handlers, which do
    /// I/O, are always timed by the worker.
    pub fn record_durations(mut self, on: bool) -> Self {
        self.record_durations = on;
        self
    }

    /// Serves only the handlers defined in the module `path` or below it (like
    /// `"billing::handlers"`); call it once per module. Other linked handlers do not run on
    /// this bus and their resources are not required: a tool that links the domain crate for a
    /// few handlers does not have to provide the resources of all the others. Command handlers
    /// outside the subset are not checked for resources either.
    pub fn serve_module(mut self, path: &'static str) -> Self {
        self.serve.push(path);
        self
    }

    /// Whether a handler defined in `module_path` is served.
    fn selected(&self, module_path: &str) -> bool {
        self.serve.is_empty()
            || self.serve.iter().any(|p| {
                module_path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    }

    /// Checks the whole program once and builds the bus, or lists every problem found:
    /// duplicate handler or event names, resources that handlers need but were not provided,
    /// resources provided twice.
    pub fn build(self) -> Result<Bus, BuildError> {
        let catalog = catalog();
        let problems = self.problems(catalog);
        if !problems.is_empty() {
            return Err(BuildError::new(problems));
        }
        let events = catalog
            .events()
            .iter()
            .map(|e| metrics::counter!("events_dispatched_total", "event" => e.name()))
            .collect();
        let handlers = catalog
            .handlers()
            .iter()
            .map(|h| HandlerMetrics {
                failures: metrics::counter!("events_handler_failures_total", "handler" => h.name()),
                duration: metrics::histogram!("events_handler_duration_seconds", "handler" => h.name()),
            })
            .collect();
        let serves = (!self.serve.is_empty()).then(|| {
            let served = |h: &HandlerInfo| self.selected(h.location().module_path());
            catalog.handlers().iter().map(served).collect()
        });
        tracing::debug!(
            events = catalog.events().len(),
            handlers = catalog.handlers().len(),
            resources = self.resources.len(),
            "event bus built"
        );
        Ok(Bus {
            inner: Arc::new(Inner {
                resources: self.resources,
                events,
                handlers,
                record_durations: self.record_durations,
                serves,
                tap: self.tap,
            }),
        })
    }

    fn problems(&self, catalog: &Catalog) -> Vec<Problem> {
        let mut problems = Vec::new();

        let mut by_name: BTreeMap<&str, Vec<&HandlerInfo>> = BTreeMap::new();
        for h in catalog.handlers() {
            by_name.entry(h.name()).or_default().push(h);
        }
        for (name, handlers) in by_name {
            if handlers.len() > 1 {
                let locations = handlers.iter().map(|h| h.location().to_string()).collect();
                problems.push(Problem::DuplicateHandlerName {
                    name: name.to_owned(),
                    locations,
                });
            }
        }

        let mut events: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for e in catalog.events() {
            events.entry(e.name()).or_default().push(e.type_name());
        }
        for (name, types) in events {
            if types.len() > 1 {
                problems.push(Problem::DuplicateEventName {
                    name: name.to_owned(),
                    types: types.join(", "),
                });
            }
        }

        let mut provided: BTreeMap<TypeId, (&str, usize)> = BTreeMap::new();
        for r in &self.resources {
            provided.entry(r.type_id).or_insert((r.type_name, 0)).1 += 1;
        }
        let mut twice: Vec<_> = provided.values().filter(|(_, n)| *n > 1).collect();
        twice.sort();
        for (name, count) in twice {
            problems.push(Problem::DuplicateResource {
                resource: (*name).to_owned(),
                count: *count,
            });
        }

        for h in catalog.handlers() {
            if !self.selected(h.location().module_path()) {
                continue;
            }
            for req in h.requirements() {
                if !provided.contains_key(&(req.type_id)()) {
                    problems.push(Problem::MissingResource {
                        handler: h.name().to_owned(),
                        location: h.location().to_string(),
                        resource: req.type_name().to_owned(),
                    });
                }
            }
        }
        problems.extend(crate::command::problems(
            &|id| provided.contains_key(&id),
            &|module| self.selected(module),
        ));
        problems
    }
}
