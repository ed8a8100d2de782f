//! The sync walk: `publish`, which runs sync handlers inline and needs no runtime. Three ways
//! through, cheapest first: the bare walk (handlers that take the event alone: no context), the
//! plain walk (sync handlers with a context, nothing else to pay for) and the full path
//! (capture, timing, spans, skips).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{handler_span, report_of, Bus, Clock, Target};
use crate::error::PublishError;
use crate::event::DomainEvent;
use crate::extract::{Context, FollowUp};
use crate::handler::Outcome;
use crate::meta::{LazyMeta, Meta};
use crate::registry::{BareWalk, EventState, Slot};
use crate::report::{FailureCause, Report};

impl Bus {
    /// Runs the sync handlers of `event` inline, in order, and reports what happened.
    ///
    /// Needs no async runtime. Async handlers are not run here: they are listed in
    /// [`Report::skipped`] (so [`Report::is_ok`] is `false`) and logged at warn level. Use
    /// [`dispatch`](Self::dispatch) or [`spawn`](Self::spawn) for events that have async handlers.
    ///
    /// An event that has durable handlers is never published here, on any backend: a sync call
    /// cannot wait for a store, so it returns [`NotPublished::NeedsAwait`](crate::error::NotPublished::NeedsAwait) and runs nothing.
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
    pub(super) fn plain_bus(&self) -> bool {
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

    /// Publishes an event that is already in the log (see [`Bus::dispatch_stored`]).
    pub(crate) fn publish_stored<E: DomainEvent>(&self, event: &E, meta: Meta) -> Report {
        self.publish_with(event, meta)
            .unwrap_or_else(|e| e.into_report::<E>())
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

    /// Calls a sync handler, catching a panic; inside its span when DEBUG traces are on.
    #[inline]
    pub(super) fn run_sync(
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
