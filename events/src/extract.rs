//! Handler parameters after the event: resources, metadata, a publisher for follow-ups.

use std::any::{type_name, Any, TypeId};
use std::ops::Deref;
use std::sync::Arc;

use crate::bus::Bus;
use crate::meta::{LazyMeta, Meta};
use crate::report::Report;
use crate::DomainEvent;

/// What a handler call can draw its parameters from.
pub struct Context<'a> {
    pub(crate) bus: &'a Bus,
    pub(crate) meta: &'a LazyMeta,
    pub(crate) depth: u32,
}

impl Context<'_> {
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
}

impl Requirement {
    /// The requirement of a resource of type `T`.
    pub const fn resource<T: ?Sized + 'static>() -> Self {
        Self {
            type_id: TypeId::of::<T>,
            type_name: type_name::<T>,
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

/// A parameter could not be drawn from the context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The resource was not provided to the bus.
    #[error("resource `{0}` was not provided to the bus")]
    MissingResource(&'static str),
    /// Custom extractor failure.
    #[error("{0}")]
    Other(String),
}

/// A shared resource (a service, a client, a repository) given to the bus at start-up:
/// `Bus::builder().resource(Mailer::new())`, taken by a handler as `mailer: Res<Mailer>`.
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
/// Follow-ups carry the handled event's correlation id, and its id as their causation id.
#[derive(Clone)]
pub struct Publisher {
    bus: Bus,
    cause: Meta,
    depth: u32,
}

impl Publisher {
    /// Publishes a follow-up event: its sync handlers run inline (see [`Bus::publish`]).
    pub fn publish<E: DomainEvent>(&self, event: &E) -> Report {
        self.bus
            .publish_caused(event, self.cause.clone(), self.depth + 1)
    }

    /// Dispatches a follow-up event to its sync and async handlers (see [`Bus::dispatch`]).
    pub async fn dispatch<E: DomainEvent>(&self, event: &E) -> Report {
        self.bus
            .dispatch_caused(event, self.cause.clone(), self.depth + 1)
            .await
    }

    /// The metadata of the event being handled, which caused the follow-ups.
    pub fn cause(&self) -> &Meta {
        &self.cause
    }
}

impl FromContext for Publisher {
    fn from_context(cx: &Context<'_>) -> Result<Self, ExtractError> {
        Ok(Publisher {
            bus: cx.bus.clone(),
            cause: cx.meta.get().clone(),
            depth: cx.depth,
        })
    }
}

pub(crate) type AnyResource = Arc<dyn Any + Send + Sync>;
