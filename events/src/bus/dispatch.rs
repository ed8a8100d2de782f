//! The async walk: `dispatch(..).await`, which runs sync and async handlers in order. The plain
//! walk is one future (`walk::Walk`); the full path stores the event first when it has durable
//! handlers (`store`), then runs each handler in its span.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;

use tracing::Instrument;

use super::{handler_span, report_of, walk, Bus, Clock, Target};
use crate::error::PublishError;
use crate::event::DomainEvent;
use crate::extract::{Context, FollowUp};
use crate::handler::{Call, Outcome};
use crate::meta::{LazyMeta, Meta};
use crate::registry::{EventState, Slot};
use crate::report::{FailureCause, Report};

impl Bus {
    /// Runs every sync and async handler of `event`, one after the other in order, and reports
    /// what happened.
    ///
    /// An event that has durable handlers is first appended to the bus's store
    /// ([`BusBuilder::store`](super::BusBuilder::store)), with the id its inline handlers then see. If it cannot be
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

    /// Awaits an async handler's future inside its span, catching a panic.
    pub(super) async fn run_async(
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
