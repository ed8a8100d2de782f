//! Handler descriptors: what `#[event_handler]` generates for each function.

use std::future::Future;
use std::marker::{PhantomData, PhantomPinned};
use std::mem::{align_of, size_of, MaybeUninit};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::catalog::Location;
use crate::extract::{Context, Requirement};
use crate::report::FailureCause;

/// A boxed, sendable future, as returned by async handler shims.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many bytes an inline async handler's future may take to run in place in its dispatch,
/// without an allocation: enough for a handler that awaits little; a larger future is boxed.
pub const INLINE_FUTURE_SIZE: usize = 96;

/// Where a dispatch runs an inline async handler's future. The handler's shim builds the
/// future right here and polls it here, so it is never moved (a move is a `memcpy` of all its
/// bytes) and, when it fits in `INLINE_FUTURE_SIZE` bytes, never allocated. A future that is
/// ready at its first poll, the common case, is dropped at once; one that waits stays here
/// until the dispatch polls it to the end or drops the slot.
pub struct FutureSlot<'a> {
    bytes: MaybeUninit<[u64; INLINE_FUTURE_SIZE / 8]>,
    /// How to poll and drop the future in `bytes`; `None` when the slot is empty.
    vtable: Option<&'static SlotVTable>,
    /// Holds a `Send` future that may borrow for `'a`.
    _future: PhantomData<dyn Future<Output = Outcome> + Send + 'a>,
    /// The future in `bytes` may point into itself once polled.
    _pinned: PhantomPinned,
}

/// The type-erased operations on the future in a [`FutureSlot`].
struct SlotVTable {
    poll: unsafe fn(*mut u8, &mut TaskContext<'_>) -> Poll<Outcome>,
    drop: unsafe fn(*mut u8),
}

/// # Safety
/// `at` points to a live, pinned `F`.
unsafe fn poll_at<F: Future<Output = Outcome>>(
    at: *mut u8,
    task: &mut TaskContext<'_>,
) -> Poll<Outcome> {
    // SAFETY: the caller's contract.
    unsafe { Pin::new_unchecked(&mut *at.cast::<F>()) }.poll(task)
}

/// # Safety
/// `at` points to a live `F`, never used again.
unsafe fn drop_at<F>(at: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::drop_in_place(at.cast::<F>()) }
}

impl<'a> FutureSlot<'a> {
    /// An empty slot. Only `vtable` is written: a struct literal would be a constant, whose
    /// uninitialized bytes are stored as zeros (measured: 14 stores per dispatch).
    #[inline]
    pub(crate) fn new() -> Self {
        let mut slot = MaybeUninit::<Self>::uninit();
        // SAFETY: `bytes` may stay uninitialized and the markers are zero-sized: `vtable` is
        // the one field to write.
        unsafe {
            (&raw mut (*slot.as_mut_ptr()).vtable).write(None);
            slot.assume_init()
        }
    }

    /// Builds `future` in the slot (boxed if it does not fit) and polls it once: an async
    /// handler's shim calls this with its `async` block.
    #[inline]
    pub fn start<F>(self: Pin<&mut Self>, future: F, task: &mut TaskContext<'_>) -> Poll<Outcome>
    where
        F: Future<Output = Outcome> + Send + 'a,
    {
        if size_of::<F>() <= INLINE_FUTURE_SIZE && align_of::<F>() <= align_of::<u64>() {
            self.start_in_place(future, task)
        } else {
            start_boxed(self, Box::pin(future), task)
        }
    }

    #[inline]
    fn start_in_place<F>(
        mut self: Pin<&mut Self>,
        future: F,
        task: &mut TaskContext<'_>,
    ) -> Poll<Outcome>
    where
        F: Future<Output = Outcome> + Send + 'a,
    {
        assert!(size_of::<F>() <= INLINE_FUTURE_SIZE && align_of::<F>() <= align_of::<u64>());
        if self.vtable.is_some() {
            self.as_mut().clear();
        }
        // SAFETY: the slot is pinned and nothing here moves it; `bytes` is empty (just
        // cleared) and fits an `F` (asserted above). The vtable is set before the first poll,
        // so a poll that panics leaves a future that `clear` (or the slot's drop) drops.
        unsafe {
            let this = self.get_unchecked_mut();
            let at = this.bytes.as_mut_ptr().cast::<u8>();
            at.cast::<F>().write(future);
            this.vtable = Some(
                const {
                    &SlotVTable {
                        poll: poll_at::<F>,
                        drop: drop_at::<F>,
                    }
                },
            );
            let poll = poll_at::<F>(at, task);
            if poll.is_ready() {
                this.vtable = None;
                drop_at::<F>(at);
            }
            poll
        }
    }

    /// Whether a future waits in the slot.
    #[inline]
    pub(crate) fn is_waiting(&self) -> bool {
        self.vtable.is_some()
    }

    /// Polls the future that waits in the slot; it is dropped once ready.
    ///
    /// # Panics
    /// If the slot is empty.
    #[inline]
    pub(crate) fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Outcome> {
        // SAFETY: the slot stays pinned; the vtable is that of the future in `bytes`.
        unsafe {
            let this = self.get_unchecked_mut();
            let vtable = this.vtable.expect("a future waits in the slot");
            let at = this.bytes.as_mut_ptr().cast::<u8>();
            let poll = (vtable.poll)(at, task);
            if poll.is_ready() {
                this.vtable = None;
                (vtable.drop)(at);
            }
            poll
        }
    }

    /// Drops the future in the slot, if any (a handler that panicked, a dispatch dropped while
    /// its handler waited).
    #[inline]
    pub(crate) fn clear(self: Pin<&mut Self>) {
        // SAFETY: the future is dropped in place, never moved; the vtable is taken first, so
        // a drop that panics is not repeated.
        unsafe {
            let this = self.get_unchecked_mut();
            if let Some(vtable) = this.vtable.take() {
                (vtable.drop)(this.bytes.as_mut_ptr().cast::<u8>());
            }
        }
    }
}

/// A future too large (or too aligned) for the slot, boxed: its box goes in the slot.
#[cold]
#[inline(never)]
fn start_boxed<'a, F>(
    slot: Pin<&mut FutureSlot<'a>>,
    future: Pin<Box<F>>,
    task: &mut TaskContext<'_>,
) -> Poll<Outcome>
where
    F: Future<Output = Outcome> + Send + 'a,
{
    slot.start_in_place(future, task)
}

impl Drop for FutureSlot<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` is being dropped: it is not moved again (pinned or not).
        unsafe { Pin::new_unchecked(self) }.clear();
    }
}

/// The shim of an inline async handler: builds the handler's future in the slot and polls it
/// once (see [`FutureSlot::start`]).
pub type AsyncCall<E> = for<'a> fn(
    &'a E,
    &'a Context<'a>,
    Pin<&mut FutureSlot<'a>>,
    &mut TaskContext<'_>,
) -> Poll<Outcome>;

/// What a handler shim returns: `Ok` or why it failed. The cause is boxed: failures are rare,
/// and an 8-byte result comes back in a register (a measured third of the per-handler cost).
pub type Outcome = Result<(), Box<FailureCause>>;

/// How a handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandlerKind {
    /// A plain `fn`: runs inline in `publish` and in `dispatch`.
    Sync,
    /// An `async fn`: runs in `dispatch(..).await`; `publish` reports it as skipped.
    Async,
    /// `#[event_handler(durable)]`: never runs inline; a worker delivers stored events to it.
    Durable,
}

impl HandlerKind {
    /// `"sync"` or `"async"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerKind::Sync => "sync",
            HandlerKind::Async => "async",
            HandlerKind::Durable => "durable",
        }
    }
}

/// The shim of a sync handler.
pub type SyncCall<E> = fn(&E, &Context<'_>) -> Outcome;

/// The shim of a sync handler that takes the event alone. An event whose inline handlers are
/// all of this kind is published without a dispatch context: nothing to build, nothing to drop.
pub type BareCall<E> = fn(&E) -> Outcome;

/// The shim that calls the user's function.
pub enum Call<E: 'static> {
    /// Calls a sync handler that takes the event alone (no extractors): without a context, or
    /// (the same handler) from a walk that has one for the other handlers of its event.
    Bare(BareCall<E>, SyncCall<E>),
    /// Calls a sync handler.
    Sync(SyncCall<E>),
    /// Starts an async handler: its future is built and polled in the dispatch's slot.
    Async(AsyncCall<E>),
    /// Decodes a stored payload (already upcast to the current version) and calls a durable
    /// handler, sync or async.
    Durable(DurableCall),
    /// Decodes a batch of stored payloads and calls a durable batch handler
    /// (`fn index(events: &[CardAdded])`).
    DurableBatch(DurableBatchCall),
}

/// The type-erased call of a durable batch handler: JSON payloads in, outcome out.
pub type DurableBatchCall =
    for<'a> fn(&'a [serde_json::Value], &'a Context<'a>) -> BoxFuture<'a, Outcome>;

/// The type-erased call of a durable handler: JSON payload in, outcome out.
pub type DurableCall = for<'a> fn(&'a serde_json::Value, &'a Context<'a>) -> BoxFuture<'a, Outcome>;

/// What a durable handler's failures lead to: how often an event is retried and how long to
/// wait in between, and when the handler's circuit breaker opens.
///
/// Attempt `n` (from 1) that fails is retried after `backoff * 2^(n-1)`, capped at five
/// minutes, with jitter (a random 50 to 100% of that), until `max_attempts` attempts failed;
/// then the event becomes a dead letter. After `breaker_after` fresh events failed in a row
/// (retries do not count), the worker pauses the handler's segment for `breaker_cooldown_ms`,
/// then probes with one fresh event. Set in the attribute:
/// `#[event_handler(durable, name = "orders.notify", max_attempts = 8, backoff_ms = 250,
/// breaker_after = 10, breaker_cooldown_ms = 60000)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub backoff_ms: u64,
    /// Fresh events failed in a row that open the circuit; `None`: the worker's setting
    /// ([`Worker::circuit_breaker`](crate::worker::Worker::circuit_breaker), default 5).
    pub breaker_after: Option<u32>,
    /// How long an open circuit pauses the handler, in milliseconds; `None`: the worker's
    /// setting (default 30 s).
    pub breaker_cooldown_ms: Option<u64>,
}

impl RetryPolicy {
    /// The default: 5 attempts, 100 ms first back-off, the worker's breaker.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        backoff_ms: 100,
        breaker_after: None,
        breaker_cooldown_ms: None,
    };

    /// The delay before retrying after failed attempt `attempt` (from 1), before jitter.
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(20);
        let ms = self.backoff_ms.saturating_mul(factor).min(300_000);
        std::time::Duration::from_millis(ms)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A handler of events of type `E`, as registered at link time.
pub struct Handler<E: 'static> {
    pub(crate) name: &'static str,
    pub(crate) order: i32,
    pub(crate) call: Call<E>,
    pub(crate) requires: &'static [Option<Requirement>],
    pub(crate) publishes: &'static [&'static str],
    pub(crate) location: Location,
    pub(crate) retry: RetryPolicy,
    pub(crate) encode: Option<Encode<E>>,
}

/// Serializes an event for the store; durable handlers carry it, so a bus given a store can
/// record the events they need.
pub type Encode<E> = fn(&E) -> Result<serde_json::Value, serde_json::Error>;

impl<E: 'static> Handler<E> {
    /// Describes a handler; called by generated code in a `static`.
    pub const fn new(
        name: &'static str,
        order: i32,
        call: Call<E>,
        requires: &'static [Option<Requirement>],
        publishes: &'static [&'static str],
        location: Location,
    ) -> Self {
        Self {
            name,
            order,
            call,
            requires,
            publishes,
            location,
            retry: RetryPolicy::DEFAULT,
            encode: None,
        }
    }

    /// Sets how a durable handler's event is serialized for the store.
    pub const fn with_encode(mut self, encode: Encode<E>) -> Self {
        self.encode = Some(encode);
        self
    }

    /// Sets the retry policy of a durable handler.
    pub const fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub(crate) fn kind(&self) -> HandlerKind {
        match self.call {
            Call::Bare(..) | Call::Sync(_) => HandlerKind::Sync,
            Call::Async(_) => HandlerKind::Async,
            Call::Durable(_) | Call::DurableBatch(_) => HandlerKind::Durable,
        }
    }

    /// Deterministic order among one event's handlers: by `order`, then by name (then by
    /// place, so even invalid duplicate names sort the same way in every build).
    pub(crate) fn sort_key(&self) -> (i32, &'static str, &'static str, u32) {
        (
            self.order,
            self.name,
            self.location.file,
            self.location.line,
        )
    }
}
