//! Handler descriptors: what `#[event_handler]` generates for each function.

use std::future::Future;
use std::pin::Pin;

use crate::catalog::Location;
use crate::extract::{Context, Requirement};
use crate::report::FailureCause;

/// A boxed, sendable future, as returned by async handler shims.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many bytes an async handler's future may take to run in place, without an allocation:
/// enough for a handler that awaits little; a larger future is boxed.
pub const INLINE_FUTURE_SIZE: usize = 96;

/// An async handler's future, as its shim returns it: in place when it fits in
/// `INLINE_FUTURE_SIZE` bytes (saving a `malloc` and a `free` per call), else boxed.
pub type InlineFuture<'a, T> = stackfuture::StackFuture<'a, T, INLINE_FUTURE_SIZE>;

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

/// The shim that calls the user's function.
pub enum Call<E: 'static> {
    /// Calls a sync handler.
    Sync(SyncCall<E>),
    /// Calls an async handler, returning its future.
    Async(for<'a> fn(&'a E, &'a Context<'a>) -> InlineFuture<'a, Outcome>),
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

/// How often a durable handler is retried, and how long to wait in between.
///
/// Attempt `n` (from 1) that fails is retried after `backoff * 2^(n-1)`, capped at five
/// minutes, with jitter (a random 50 to 100% of that), until `max_attempts` attempts failed;
/// then the event becomes a dead letter. Set in the attribute:
/// `#[event_handler(durable, name = "orders.notify", max_attempts = 8, backoff_ms = 250)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub backoff_ms: u64,
}

impl RetryPolicy {
    /// The default: 5 attempts, 100 ms first back-off.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        backoff_ms: 100,
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
            Call::Sync(_) => HandlerKind::Sync,
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
