//! How `dispatch` runs an event's inline handlers: one hand-written future that walks them,
//! building each async handler's future in its own slot and polling it there.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};

use crate::bus::{Bus, Target};
use crate::event::DomainEvent;
use crate::extract::{Context, FollowUp};
use crate::handler::{AsyncCall, Call, FutureSlot, Handler, Outcome};
use crate::registry::{EventState, Inline};
use crate::report::{FailureCause, Report};

/// The plain `dispatch` walk (no capture, timing, spans or durable handlers) as one future.
///
/// What it saves over an `async fn` that awaits each handler: the handler's future is built
/// where it is polled (never moved), a handler that is ready at once costs one indirect call,
/// and one `catch_unwind` guards each poll of the whole walk instead of each handler. A panic
/// ends that poll at the handler that panicked: it is reported as its failure, its future is
/// dropped, and the walk goes on with the next handler.
pub(super) struct Walk<'a, E: 'static> {
    bus: &'a Bus,
    event: &'a E,
    cx: &'a Context<'a>,
    handlers: &'a [Inline<&'static Handler<E>>],
    /// The next handler to start; `handlers.len()`: the follow-ups are closed next; above it:
    /// done.
    next: usize,
    /// Taken when the walk is over.
    report: Option<Report>,
    /// The follow-ups of the last handler, dispatched before the next handler starts.
    follow_ups: Option<Pin<Box<dyn Future<Output = Vec<Report>> + Send + 'a>>>,
    /// The future of the async handler `next - 1`, while it waits.
    slot: FutureSlot<'a>,
}

impl<'a, E: DomainEvent> Walk<'a, E> {
    #[inline]
    pub(super) fn new(
        bus: &'a Bus,
        event: &'a E,
        state: &'a EventState<E>,
        cx: &'a Context<'a>,
    ) -> Self {
        Self {
            bus,
            event,
            cx,
            handlers: &state.inline,
            next: 0,
            report: Some(Report::new(state.index)),
            follow_ups: None,
            slot: FutureSlot::new(),
        }
    }

    /// The slot, pinned: `self` is only ever reached through `Pin<&mut Walk>` (in `poll`).
    #[inline]
    fn slot(&mut self) -> Pin<&mut FutureSlot<'a>> {
        // SAFETY: `Walk` is `!Unpin` (its slot is) and used only through `poll`'s pin, so the
        // slot is never moved once a future is in it.
        unsafe { Pin::new_unchecked(&mut self.slot) }
    }

    /// Runs handlers until one waits (`Pending`), follow-ups are queued (`Ready(false)`) or the
    /// walk is over (`Ready(true)`).
    #[inline]
    fn run(&mut self, task: &mut TaskContext<'_>) -> Poll<bool> {
        if self.slot.is_waiting() {
            let outcome = ready!(self.slot().poll(task));
            if self.finished(outcome) {
                return Poll::Ready(false);
            }
        }
        while let Some(handler) = self.handlers.get(self.next) {
            self.next += 1;
            let outcome = match handler.call.call {
                Call::Bare(call, _) => call(self.event),
                Call::Sync(call) => call(self.event, self.cx),
                Call::Async(start) => ready!(self.start(start, task)),
                Call::Durable(_) | Call::DurableBatch(_) => continue,
            };
            if self.finished(outcome) {
                return Poll::Ready(false);
            }
        }
        if self.next == self.handlers.len() {
            self.next += 1;
            // A publisher kept past the dispatch publishes its own from now on.
            if self.cx.has_follow_ups() && self.queue(self.cx.close_follow_ups()) {
                return Poll::Ready(false);
            }
        }
        Poll::Ready(true)
    }

    /// After handler `next - 1` returned: whether follow-ups are queued.
    #[inline]
    fn finished(&mut self, outcome: Outcome) -> bool {
        // One branch for both rare cases: a failure, or a handler that took a publisher.
        (outcome.is_err() | self.cx.has_follow_ups()) && self.after_call(outcome)
    }

    #[inline]
    fn start(&mut self, start: AsyncCall<E>, task: &mut TaskContext<'_>) -> Poll<Outcome> {
        let (event, cx) = (self.event, self.cx);
        start(event, cx, self.slot(), task)
    }

    /// After handler `next - 1` failed or may have published follow-ups: records the failure
    /// and queues the follow-ups (returns whether there are any).
    #[cold]
    #[inline(never)]
    fn after_call(&mut self, outcome: Outcome) -> bool {
        let handler = &self.handlers[self.next - 1];
        let target = Target::of::<E>(handler.name, handler.index);
        let report = self
            .report
            .as_mut()
            .expect("a walk reports until it is over");
        if let Err(cause) = self.bus.finish(target, None, outcome) {
            report.fail(handler.name, *cause);
        }
        self.queue(self.cx.take_follow_ups())
    }

    /// Handler `next - 1` panicked: its failure, then its follow-ups.
    #[cold]
    #[inline(never)]
    fn panicked(&mut self, panic: Box<dyn Any + Send>) {
        self.slot().clear();
        self.after_call(Err(Box::new(FailureCause::from_panic(panic))));
    }

    /// Queues the follow-ups taken from the context, if any; returns whether there are.
    #[cold]
    fn queue(&mut self, taken: Option<Vec<Box<dyn FollowUp>>>) -> bool {
        match taken {
            Some(follow_ups) if !follow_ups.is_empty() => {
                self.follow_ups = Some(Box::pin(dispatched(self.bus, self.cx, follow_ups)));
                true
            }
            _ => false,
        }
    }

    /// Dispatches the queued follow-ups; their reports go into the walk's.
    #[cold]
    fn poll_follow_ups(&mut self, task: &mut TaskContext<'_>) -> Poll<()> {
        if let Some(follow_ups) = &mut self.follow_ups {
            let reports = ready!(follow_ups.as_mut().poll(task));
            self.follow_ups = None;
            let outer = self
                .report
                .as_mut()
                .expect("a walk reports until it is over");
            for report in reports {
                outer.follow_up(report);
            }
        }
        Poll::Ready(())
    }
}

impl<E: DomainEvent> Future for Walk<'_, E> {
    type Output = Report;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Report> {
        // SAFETY: the slot, the only field that must stay in place, is not moved here, and
        // only reached through `Walk::slot`.
        let this = unsafe { self.get_unchecked_mut() };
        loop {
            if this.follow_ups.is_some() {
                // Outside the guard: a panic there is not a handler's (each follow-up's own
                // walk guards its handlers).
                ready!(this.poll_follow_ups(task));
            }
            match catch_unwind(AssertUnwindSafe(|| this.run(task))) {
                Ok(Poll::Pending) => return Poll::Pending,
                Ok(Poll::Ready(false)) => {}
                Ok(Poll::Ready(true)) => break,
                Err(panic) => this.panicked(panic),
            }
        }
        let mut report = this
            .report
            .take()
            .expect("a walk is polled until it is over, no more");
        report.ran_all(this.handlers.len());
        Poll::Ready(report)
    }
}

/// Dispatches follow-ups published by a handler under `dispatch`, in order: their reports.
pub(super) async fn dispatched(
    bus: &Bus,
    cx: &Context<'_>,
    follow_ups: Vec<Box<dyn FollowUp>>,
) -> Vec<Report> {
    let mut reports = Vec::with_capacity(follow_ups.len());
    for follow_up in follow_ups {
        reports.push(follow_up.dispatch(bus, cx.meta(), cx.depth + 1).await);
    }
    reports
}

/// An inline async handler's call as a future, for the full `dispatch` path (inside spans,
/// timed): started on its first poll, then polled in its own slot.
pub(super) struct Started<'a, E: 'static> {
    start: Option<(AsyncCall<E>, &'a E, &'a Context<'a>)>,
    slot: FutureSlot<'a>,
}

impl<'a, E: 'static> Started<'a, E> {
    pub(super) fn new(start: AsyncCall<E>, event: &'a E, cx: &'a Context<'a>) -> Self {
        Self {
            start: Some((start, event, cx)),
            slot: FutureSlot::new(),
        }
    }
}

impl<E: 'static> Future for Started<'_, E> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Outcome> {
        // SAFETY: the slot is pinned with `self` and never moved out.
        let (start, slot) = unsafe {
            let this = self.get_unchecked_mut();
            (&mut this.start, Pin::new_unchecked(&mut this.slot))
        };
        match start.take() {
            Some((start, event, cx)) => start(event, cx, slot, task),
            None => slot.poll(task),
        }
    }
}
