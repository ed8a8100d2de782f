//! The bus: built once at start-up from the link-time catalog, then dispatches events to their
//! own handler lists.

use std::any::{Any, TypeId};
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use metrics::{Counter, Histogram};
use tracing::Instrument;

use crate::catalog::{catalog, Catalog};
use crate::error::{NotPublished, PublishError};
use crate::event::DomainEvent;
use crate::extract::{AnyResource, Context, FollowUp};
use crate::handler::{Call, Encode, Outcome};
use crate::meta::{LazyMeta, Meta};
use crate::registry::{BareWalk, EventState, Slot};
use crate::report::{FailureCause, Report};
use crate::sink::{Due, DurableRecord, DurableSink, NewTimer, ScheduleError, TimerId, TimerWrite};

mod builder;
mod walk;

pub use builder::BusBuilder;

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
    /// Runs the sync handlers of `event` inline, in order, and reports what happened.
    ///
    /// Needs no async runtime. Async handlers are not run here: they are listed in
    /// [`Report::skipped`] (so [`Report::is_ok`] is `false`) and logged at warn level. Use
    /// [`dispatch`](Self::dispatch) or [`spawn`](Self::spawn) for events that have async handlers.
    ///
    /// An event that has durable handlers is never published here, on any backend: a sync call
    /// cannot wait for a store, so it returns [`NotPublished::NeedsAwait`] and runs nothing.
    /// Store it with [`dispatch`](Self::dispatch) or the store's outbox. The `Err` is only
    /// ever about storing; handler failures are in the [`Report`].
    #[inline]
    pub fn publish<E: DomainEvent>(&self, event: &E) -> Result<Report, PublishError> {
        let registry = E::Slot::registry();
        let quiet = !tracing::level_enabled!(tracing::Level::DEBUG);
        // The bare walk is small and inline, so that the caller pays for no call frame of the
        // bus; the walk with a context has a frame of its own.
        if let (Some(walk), true) = (registry.bare(), self.inner.bare & quiet) {
            return Ok(self.publish_bare(event, walk));
        }
        // Laid out after the bare walk, which then runs straight through: its taken jumps, not
        // its instructions, were what a 1-handler publish spent most of its time on.
        std::hint::cold_path();
        self.publish_out_of_line(event)
    }

    /// `publish` when the bare walk will not do: a handler takes parameters (the plain walk,
    /// with a context), or more is needed (see [`Bus::plain`]), or a recorder counts.
    #[inline(never)]
    fn publish_out_of_line<E: DomainEvent>(&self, event: &E) -> Result<Report, PublishError> {
        let make = || Meta::of(event);
        let state = E::Slot::registry().state();
        self.publish_context(event, state, &LazyMeta::new(&make), 0)
    }

    /// Whether a dispatch of this event may take the plain walk: only sync handlers, no
    /// capture, no timing, no subset, and no DEBUG traces (which want a span per handler).
    #[inline]
    fn plain<E>(&self, state: &EventState<E>) -> bool {
        state.plain & self.plain_bus()
    }

    /// The bus's half of [`Bus::plain`]: no capture, timing or subset, and no DEBUG traces.
    #[inline]
    fn plain_bus(&self) -> bool {
        self.inner.plain & !tracing::level_enabled!(tracing::Level::DEBUG)
    }

    /// Like [`publish`](Self::publish), with the event's metadata given (an id and time of
    /// the caller's, for example one read from a store: an event whose metadata has a
    /// [`position`](Meta::position) is already stored, so it may have durable handlers).
    pub fn publish_with<E: DomainEvent>(
        &self,
        event: &E,
        meta: Meta,
    ) -> Result<Report, PublishError> {
        self.publish_in(event, &LazyMeta::given(meta), 0)
    }

    /// Runs every sync and async handler of `event`, one after the other in order, and reports
    /// what happened.
    ///
    /// An event that has durable handlers is first appended to the bus's store
    /// ([`BusBuilder::store`]), with the id its inline handlers then see. If it cannot be
    /// stored (no store, the store failed, the payload does not serialize), this returns a
    /// [`PublishError`] and runs no handler: the same on every backend. Handler failures are
    /// never this error; they are in the [`Report`].
    pub async fn dispatch<E: DomainEvent>(&self, event: &E) -> Result<Report, PublishError> {
        let make = || Meta::of(event);
        let meta = LazyMeta::new(&make);
        let cx = Context::dispatching(self, &meta, 0);
        match self.plain_walk::<E>() {
            Some(state) => Ok(pin!(walk::Walk::new(self, event, state, &cx)).await),
            None => self.dispatch_traced(event, &cx).await,
        }
    }

    /// Schedules `event` to be published at `when` (a [`Duration`] from now, or a
    /// [`SystemTime`](std::time::SystemTime)): a timer stored in the bus's store
    /// ([`BusBuilder::store`]) that a worker fires at its due time, appending the event to the
    /// log for its durable handlers. Inside a transaction of your own, use the outbox's
    /// `schedule` instead. Fails (and stores nothing) without a store, when the store fails,
    /// or when the event does not serialize.
    ///
    /// ```
    /// use std::time::Duration;
    /// use events::{Bus, BoxError, DomainEvent};
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(DomainEvent, Serialize, Deserialize)]
    /// struct ReminderDue { user: u32 }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = events::store::connect("sqlite::memory:").await?;
    /// let bus = Bus::builder().store(store.clone()).build()?;
    /// let id = bus.schedule(Duration::from_secs(60), &ReminderDue { user: 1 }).await?;
    /// assert_eq!(store.timers().await?[0].id, id);
    /// # Ok::<(), BoxError>(()) }).unwrap();
    /// ```
    pub async fn schedule<E: DomainEvent + serde::Serialize>(
        &self,
        when: impl Into<Due>,
        event: &E,
    ) -> Result<TimerId, ScheduleError> {
        let Some(sink) = &self.inner.sink else {
            return Err(ScheduleError::NoStore { event: E::NAME });
        };
        let (id, write) = TimerWrite::schedule(when.into(), event, &Meta::of(event), None, None)?;
        sink.commit(Vec::new(), Vec::new(), vec![write])
            .await
            .map_err(|source| ScheduleError::NotStored {
                event: E::NAME,
                source,
            })?;
        tracing::debug!(event = E::NAME, timer = %id, "timer scheduled");
        Ok(id)
    }

    /// Like [`dispatch`](Self::dispatch), with the event's metadata given (one with a
    /// [`position`](Meta::position) is already stored and is not stored again).
    pub async fn dispatch_with<E: DomainEvent>(
        &self,
        event: &E,
        meta: Meta,
    ) -> Result<Report, PublishError> {
        let meta = LazyMeta::given(meta);
        let cx = Context::dispatching(self, &meta, 0);
        match self.plain_walk::<E>() {
            Some(state) => Ok(pin!(walk::Walk::new(self, event, state, &cx)).await),
            None => self.dispatch_traced(event, &cx).await,
        }
    }

    /// Dispatches an event that is already in the log (its metadata has its position) or has
    /// no durable handlers: it is not stored, so there is no [`PublishError`] to return.
    pub(crate) async fn dispatch_stored<E: DomainEvent>(&self, event: &E, meta: Meta) -> Report {
        self.dispatch_with(event, meta)
            .await
            .unwrap_or_else(|e| e.into_report::<E>())
    }

    /// Publishes an event that is already in the log (see [`Bus::dispatch_stored`]).
    pub(crate) fn publish_stored<E: DomainEvent>(&self, event: &E, meta: Meta) -> Report {
        self.publish_with(event, meta)
            .unwrap_or_else(|e| e.into_report::<E>())
    }

    /// Dispatches an owned event on the current tokio runtime and returns at once.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn spawn<E: DomainEvent>(
        &self,
        event: E,
    ) -> tokio::task::JoinHandle<Result<Report, PublishError>> {
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

    pub(crate) fn publish_caused<E: DomainEvent>(
        &self,
        event: &E,
        cause: &Meta,
        depth: u32,
    ) -> Report {
        match Self::follow_up_meta(event, cause, depth) {
            Ok(make) => self
                .publish_in(event, &LazyMeta::new(&make), depth)
                .unwrap_or_else(|e| e.into_report::<E>()),
            Err(cut) => cut,
        }
    }

    pub(crate) async fn dispatch_caused<E: DomainEvent>(
        &self,
        event: &E,
        cause: &Meta,
        depth: u32,
    ) -> Report {
        let make = match Self::follow_up_meta(event, cause, depth) {
            Ok(make) => make,
            Err(cut) => return cut,
        };
        let meta = LazyMeta::new(&make);
        let cx = Context::dispatching(self, &meta, depth);
        match self.plain_walk::<E>() {
            Some(state) => pin!(walk::Walk::new(self, event, state, &cx)).await,
            None => self
                .dispatch_traced(event, &cx)
                .await
                .unwrap_or_else(|e| e.into_report::<E>()),
        }
    }

    /// Fails as a sync `publish` of `E` does when `E` has durable handlers.
    pub(crate) fn check_sync<E: DomainEvent>(&self) -> Result<(), PublishError> {
        let durable = &E::Slot::registry().state().durable;
        if durable.is_empty() {
            return Ok(());
        }
        Err(refused(NotPublished::NeedsAwait {
            event: E::NAME,
            handlers: durable.to_vec(),
        }))
    }

    /// The store events with durable handlers are appended to, if the bus has one.
    pub(crate) fn sink(&self) -> Option<&dyn DurableSink> {
        self.inner.sink.as_deref()
    }

    /// How to serialize `E` for the store, if it has durable handlers.
    pub(crate) fn durable_encoder<E: DomainEvent>(&self) -> Option<Encode<E>> {
        let state = E::Slot::registry().state();
        if state.durable.is_empty() {
            None
        } else {
            state.encode
        }
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

    #[inline]
    fn publish_in<E: DomainEvent>(
        &self,
        event: &E,
        meta: &LazyMeta,
        depth: u32,
    ) -> Result<Report, PublishError> {
        let registry = E::Slot::registry();
        if let (Some(walk), true) = (registry.bare(), self.plain_bus()) {
            self.inner.count(walk.ran_all.event());
            return Ok(self.publish_bare(event, walk));
        }
        self.publish_context(event, registry.state(), meta, depth)
    }

    /// `publish` with a dispatch context: the plain walk, or the full path.
    #[inline]
    fn publish_context<E: DomainEvent>(
        &self,
        event: &E,
        state: &EventState<E>,
        meta: &LazyMeta,
        depth: u32,
    ) -> Result<Report, PublishError> {
        let cx = Context::dispatching(self, meta, depth);
        if self.plain(state) {
            self.inner.count(state.index);
            Ok(self.publish_plain(event, state, &cx))
        } else {
            let _publishing = crate::trace::publish(E::NAME, meta).entered();
            self.publish_full(event, &cx)
        }
    }

    /// `publish` with everything: capture, durable storage, skips, timing, spans.
    #[inline(never)]
    fn publish_full<E: DomainEvent>(
        &self,
        event: &E,
        cx: &Context<'_>,
    ) -> Result<Report, PublishError> {
        let mut report = report_of::<E>();
        let Some(state) = self.begin(event, cx.meta) else {
            return Ok(report);
        };
        if !state.durable.is_empty() && cx.meta.get().position.is_none() {
            self.check_sync::<E>()?;
        }
        if !state.asynchronous.is_empty() {
            skipped(&mut report, E::NAME, &state.asynchronous, ASYNC_SKIPPED);
        }
        let (traced, mut clock) = (tracing::level_enabled!(tracing::Level::DEBUG), self.clock());
        for handler in state.sync.iter() {
            let target = Target::of::<E>(handler.name, handler.index);
            let outcome =
                self.run_sync(target, cx, traced, &mut clock, || (handler.call)(event, cx));
            report.record(handler.name, outcome);
            if let Some(follow_ups) = cx.take_follow_ups() {
                self.publish_follow_ups(cx, follow_ups, &mut report);
            }
        }
        if let Some(follow_ups) = cx.close_follow_ups() {
            self.publish_follow_ups(cx, follow_ups, &mut report);
        }
        Ok(report)
    }

    /// The cheapest path: only sync handlers, each taking the event alone, so there is no
    /// dispatch context to build (no metadata, no follow-ups); no capture, timing or spans. The
    /// caller counts the dispatch, if a recorder wants it.
    #[inline]
    fn publish_bare<E: DomainEvent>(&self, e: &E, walk: &BareWalk<E>) -> Report {
        // One `catch_unwind` around the walk, not one per handler. The walk stops at a handler
        // that fails or panics; a cold path reports it and walks on, so that the common case
        // returns a tally made once.
        let mut at = 0;
        match catch_unwind(AssertUnwindSafe(|| walk_bare(e, walk, &mut at))) {
            Ok(Ok(())) => Report::counted(walk.ran_all),
            stopped => self.bare_stopped(e, walk, at, stopped),
        }
    }

    /// The bare walk stopped at handler `at`, which failed or panicked: reports it and walks
    /// on from the next handler, as often as handlers stop it.
    #[cold]
    #[inline(never)]
    fn bare_stopped<E: DomainEvent>(
        &self,
        e: &E,
        walk: &BareWalk<E>,
        mut at: usize,
        mut stopped: std::thread::Result<Outcome>,
    ) -> Report {
        let state = E::Slot::registry().state();
        let mut report = Report::counted(walk.ran_all);
        loop {
            let cause = match stopped {
                Ok(Ok(())) => return report,
                Ok(Err(cause)) => cause,
                Err(panic) => Box::new(FailureCause::from_panic(panic)),
            };
            self.failed_plain(Self::target(state, at), cause, &mut report);
            at += 1;
            stopped = catch_unwind(AssertUnwindSafe(|| walk_bare(e, walk, &mut at)));
        }
    }

    /// The common case, paying only for what is used: sync handlers only, no capture, no
    /// timing, no spans. Failures, panics and follow-ups take the cold paths.
    #[inline]
    fn publish_plain<E: DomainEvent>(&self, e: &E, state: &EventState<E>, cx: &Context) -> Report {
        let mut report = Report::new(state.index);
        // One `catch_unwind` around the walk, not one per handler: a panic ends the walk at the
        // handler that panicked (reported as its failure), and the walk goes on after it.
        let mut at = 0;
        if let Err(panic) = self.walk_plain((e, state, cx), &mut at, &mut report) {
            self.walk_after_panic((e, state, cx), (at, panic), &mut report);
        }
        if cx.has_follow_ups() {
            // A publisher kept past the dispatch publishes its own from now on.
            if let Some(follow_ups) = cx.close_follow_ups() {
                self.publish_follow_ups(cx, follow_ups, &mut report);
            }
        }
        report.ran_all(state.sync_calls.len());
        report
    }

    /// The plain walk from handler `at` on, which it advances; a handler's panic stops it
    /// (`at` is then that handler).
    #[inline(always)]
    fn walk_plain<E: DomainEvent>(
        &self,
        (e, state, cx): Walk<'_, E>,
        at: &mut usize,
        report: &mut Report,
    ) -> std::thread::Result<()> {
        catch_unwind(AssertUnwindSafe(|| {
            while let Some(call) = state.sync_calls.get(*at) {
                let outcome = call(e, cx);
                // One branch for both rare cases: a failure, or a handler that took a publisher.
                if cx.look_after(&outcome) {
                    self.after_plain_call(Self::target(state, *at), outcome, cx, report);
                } else {
                    // `Ok(())`: nothing to drop, and no check of it left in the loop.
                    std::mem::forget(outcome);
                }
                *at += 1;
            }
        }))
    }

    /// Reports the handler at `at` that panicked as its failure, with its follow-ups, and walks
    /// on after it, as often as handlers panic. One `catch_unwind` guards each stretch of the
    /// walk, not each handler.
    #[cold]
    #[inline(never)]
    fn walk_after_panic<E: DomainEvent>(
        &self,
        walk: Walk<'_, E>,
        (mut at, mut panic): (usize, Box<dyn Any + Send>),
        report: &mut Report,
    ) {
        let (_, state, cx) = walk;
        loop {
            let cause = Box::new(FailureCause::from_panic(panic));
            self.after_plain_call(Self::target(state, at), Err(cause), cx, report);
            at += 1;
            match self.walk_plain(walk, &mut at, report) {
                Ok(()) => return,
                Err(next) => panic = next,
            }
        }
    }

    /// The sync handler at `at` of an event's plain walk (its name and index are read only
    /// on a failure: the walk steps through the calls alone).
    #[cold]
    #[inline(never)]
    fn target<E: DomainEvent>(state: &EventState<E>, at: usize) -> Target {
        let handler = &state.sync[at];
        Target::of::<E>(handler.name, handler.index)
    }

    /// After a sync handler on the plain path, when it failed or may have published follow-ups.
    #[cold]
    #[inline(never)]
    fn after_plain_call(
        &self,
        target: Target,
        outcome: Outcome,
        cx: &Context<'_>,
        report: &mut Report,
    ) {
        if let Err(cause) = outcome {
            self.failed_plain(target, cause, report);
        }
        // Follow-ups published by a handler run right after it.
        if let Some(follow_ups) = cx.take_follow_ups() {
            self.publish_follow_ups(cx, follow_ups, report);
        }
    }

    /// A handler on a plain or bare walk failed: logged, counted in its metric, and recorded
    /// in the report (which counts it with the others that ran).
    #[cold]
    #[inline(never)]
    fn failed_plain(&self, target: Target, cause: Box<FailureCause>, report: &mut Report) {
        self.failed(target, &cause);
        report.fail(target.handler, *cause);
    }

    /// The event's handlers for the plain walk (the dispatch counted), or `None` when the
    /// dispatch needs the full path: durable handlers, capture, timing or DEBUG traces. The
    /// walk itself is awaited by the caller: one state machine, not two.
    #[inline]
    fn plain_walk<E: DomainEvent>(&self) -> Option<&'static EventState<E>> {
        let state = E::Slot::registry().state();
        if state.durable.is_empty() && self.plain_bus() {
            self.inner.count(state.index);
            Some(state)
        } else {
            None
        }
    }

    /// The full path, in the event's span.
    async fn dispatch_traced<E: DomainEvent>(
        &self,
        event: &E,
        cx: &Context<'_>,
    ) -> Result<Report, PublishError> {
        let publishing = crate::trace::publish(E::NAME, cx.meta);
        self.dispatch_full(event, cx).instrument(publishing).await
    }

    /// `dispatch` with everything: capture, durable storage, timing, spans.
    async fn dispatch_full<E: DomainEvent>(
        &self,
        event: &E,
        cx: &Context<'_>,
    ) -> Result<Report, PublishError> {
        let mut report = report_of::<E>();
        let Some(state) = self.begin(event, cx.meta) else {
            return Ok(report);
        };
        if !state.durable.is_empty() {
            self.store(event, cx.meta, state).await?;
        }
        let (traced, mut clock) = (tracing::level_enabled!(tracing::Level::DEBUG), self.clock());
        for handler in state.inline.iter() {
            let target = Target::of::<E>(handler.name, handler.index);
            let outcome = match handler.call.call {
                Call::Bare(call, _) => {
                    self.run_sync(target, cx, traced, &mut clock, || call(event))
                }
                Call::Sync(call) => {
                    self.run_sync(target, cx, traced, &mut clock, || call(event, cx))
                }
                Call::Async(start) => {
                    let future = walk::Started::new(start, event, cx);
                    self.run_async(target, cx, &mut clock, future).await
                }
                Call::Durable(_) | Call::DurableBatch(_) => continue,
            };
            report.record(handler.name, outcome);
            if let Some(follow_ups) = cx.take_follow_ups() {
                self.dispatch_follow_ups(cx, follow_ups, &mut report).await;
            }
        }
        if let Some(follow_ups) = cx.close_follow_ups() {
            self.dispatch_follow_ups(cx, follow_ups, &mut report).await;
        }
        Ok(report)
    }

    /// Runs follow-ups published by a handler under `publish`: sync handlers only.
    #[cold]
    fn publish_follow_ups(
        &self,
        cx: &Context<'_>,
        follow_ups: Vec<Box<dyn FollowUp>>,
        report: &mut Report,
    ) {
        for follow_up in follow_ups {
            report.follow_up(follow_up.publish(self, cx.meta(), cx.depth + 1));
        }
    }

    /// Runs follow-ups published by a handler under `dispatch`: sync and async handlers.
    async fn dispatch_follow_ups(
        &self,
        cx: &Context<'_>,
        follow_ups: Vec<Box<dyn FollowUp>>,
        report: &mut Report,
    ) {
        for follow_up in walk::dispatched(self, cx, follow_ups).await {
            report.follow_up(follow_up);
        }
    }

    /// Stores the event for its durable handlers from `dispatch`, unless it is already in
    /// the log; nothing has run yet, so an error here means nothing happened.
    async fn store<E: DomainEvent>(
        &self,
        event: &E,
        meta: &LazyMeta<'_>,
        state: &EventState<E>,
    ) -> Result<(), PublishError> {
        let meta = meta.get();
        if meta.position.is_some() {
            return Ok(());
        }
        let Some(sink) = &self.inner.sink else {
            return Err(refused(NotPublished::NoStore {
                event: E::NAME,
                handlers: state.durable.to_vec(),
            }));
        };
        let not_stored = |source| {
            refused(NotPublished::NotStored {
                event: E::NAME,
                source,
            })
        };
        let record = match state.encode {
            Some(encode) => DurableRecord::of(event, meta, encode)
                .map_err(|e| not_stored(format!("cannot serialize it: {e}").into()))?,
            None => return Err(not_stored(
                "it has durable handlers but no encoder; rebuild with the same `events` version"
                    .into(),
            )),
        };
        let position = sink
            .commit(vec![record], Vec::new(), Vec::new())
            .await
            .map_err(not_stored)?;
        tracing::debug!(event = E::NAME, ?position, "stored for durable handlers");
        Ok(())
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
        future: impl Future<Output = Outcome>,
    ) -> Outcome {
        let guarded = guarded(future);
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            let outcome = guarded.await;
            return self.finish(target, clock.lap(), outcome);
        }
        let span = handler_span(target, cx);
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

/// What a plain sync walk goes through: the event, its handlers and the dispatch's context.
type Walk<'a, E> = (&'a E, &'a EventState<E>, &'a Context<'a>);

/// The bare walk from handler `at` on, which it advances; it stops at a handler that fails
/// (returning its failure) or panics (`at` is then that handler).
#[inline(always)]
fn walk_bare<E>(e: &E, walk: &BareWalk<E>, at: &mut usize) -> Outcome {
    if *at == 0 {
        (walk.first)(e)?;
        *at = 1;
    }
    while let Some(call) = walk.calls.get(*at) {
        call(e)?;
        *at += 1;
    }
    Ok(())
}

/// An empty report of an event of type `E`.
#[inline]
fn report_of<E: DomainEvent>() -> Report {
    Report::new(E::Slot::registry().state().index)
}

/// A handler's future whose panic becomes its failure.
async fn guarded<F: Future<Output = Outcome>>(future: F) -> Outcome {
    let mut future = std::pin::pin!(future);
    poll_fn(
        move |task| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(task))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(Box::new(FailureCause::from_panic(panic)))),
        },
    )
    .await
}

const ASYNC_SKIPPED: &str =
    "async handler skipped by `publish`; use `dispatch(..).await` or `spawn`";
/// Reports handlers that did not get the event, each with a warn line.
#[cold]
fn skipped(report: &mut Report, event: &'static str, handlers: &[&'static str], why: &'static str) {
    for &handler in handlers {
        tracing::warn!(event, handler, "{why}");
        report.skip(handler);
    }
}

/// An event that was not published: logged at error level and counted, as the caller gets it.
#[cold]
pub(crate) fn refused(kind: NotPublished) -> PublishError {
    let error = PublishError::new(kind);
    tracing::error!(event = error.event(), "{error}");
    metrics::counter!("events_not_published_total", "event" => error.event()).increment(1);
    error
}

impl PublishError {
    /// The report of a follow-up event that could not be stored: its publisher's publish
    /// already succeeded, so each of its durable handlers is reported failed instead.
    #[cold]
    pub(crate) fn into_report<E: DomainEvent>(self) -> Report {
        let mut report = report_of::<E>();
        for &handler in E::Slot::registry().state().durable.iter() {
            report.fail(handler, FailureCause::NotStored(self.to_string()));
        }
        report
    }
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

impl DurableRecord {
    /// The record of `event` with the metadata its inline handlers see.
    pub(crate) fn of<E: DomainEvent>(
        event: &E,
        meta: &Meta,
        encode: Encode<E>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_id: meta.event_id,
            name: E::NAME,
            version: E::VERSION,
            aggregate_type: E::AGGREGATE_TYPE.unwrap_or(E::NAME),
            aggregate_id: meta.aggregate_id().unwrap_or_default().to_owned(),
            payload: encode(event)?,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            occurred_at: meta.occurred_at,
        })
    }
}

impl TimerWrite {
    /// The write that schedules `event` at `when` (from `now`) under `owner` and `key`, with
    /// `meta` as the fired event's id, correlation and causation.
    pub(crate) fn schedule<E: DomainEvent + serde::Serialize>(
        when: Due,
        event: &E,
        meta: &Meta,
        owner: Option<String>,
        key: Option<String>,
    ) -> Result<(TimerId, Self), ScheduleError> {
        let record =
            DurableRecord::of(event, meta, |e| serde_json::to_value(e)).map_err(|source| {
                ScheduleError::Encode {
                    event: E::NAME,
                    source,
                }
            })?;
        let id = TimerId::new();
        let timer = NewTimer {
            id,
            due_at: when.at(SystemTime::now()),
            owner,
            key,
            event: record,
        };
        Ok((id, TimerWrite::Schedule(timer)))
    }
}
