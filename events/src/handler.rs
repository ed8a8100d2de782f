//! Handler descriptors: what `#[event_handler]` generates for each function.

use std::future::Future;
use std::pin::Pin;

use crate::catalog::Location;
use crate::extract::{Context, Requirement};
use crate::report::FailureCause;

/// A boxed, sendable future, as returned by async handler shims.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a handler shim returns: `Ok` or why it failed.
pub type Outcome = Result<(), FailureCause>;

/// How a handler runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandlerKind {
    /// A plain `fn`: runs inline in `publish` and in `dispatch`.
    Sync,
    /// An `async fn`: runs in `dispatch(..).await`; `publish` reports it as skipped.
    Async,
}

impl HandlerKind {
    /// `"sync"` or `"async"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerKind::Sync => "sync",
            HandlerKind::Async => "async",
        }
    }
}

/// The shim that calls the user's function.
pub enum Call<E: 'static> {
    /// Calls a sync handler.
    Sync(fn(&E, &Context<'_>) -> Outcome),
    /// Calls an async handler, returning its future.
    Async(for<'a> fn(&'a E, &'a Context<'a>) -> BoxFuture<'a, Outcome>),
}

/// A handler of events of type `E`, as registered at link time.
pub struct Handler<E: 'static> {
    pub(crate) name: &'static str,
    pub(crate) order: i32,
    pub(crate) call: Call<E>,
    pub(crate) requires: &'static [Option<Requirement>],
    pub(crate) publishes: &'static [&'static str],
    pub(crate) location: Location,
}

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
        }
    }

    pub(crate) fn kind(&self) -> HandlerKind {
        match self.call {
            Call::Sync(_) => HandlerKind::Sync,
            Call::Async(_) => HandlerKind::Async,
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
