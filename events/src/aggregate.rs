//! Recording aggregates: an aggregate keeps an [`EventRecorder`]; its methods
//! [`record`](EventRecorder::record) events of any [`DomainEvent`] type. After the repository
//! saved it, [`AggregateRoot::take_events`] hands them out as an [`EventBatch`], which
//! dispatches each event, in recording order, to its own type's handlers.
//!
//! Event-sourced aggregates live one layer up, in [`sourcing`](crate::sourcing).

use std::any::Any;
use std::fmt;

use crate::bus::Bus;
use crate::error::PublishError;
use crate::event::DomainEvent;
use crate::outbox::Outbox;
use crate::report::Report;

/// An event of any type, recorded by an aggregate; object safe, so a batch can mix types.
///
/// Implemented for every [`DomainEvent`]: publishing goes through `bus.publish::<E>`, that
/// is, the event type's own static handler list.
pub trait RecordedEvent: Any + Send + Sync {
    /// The event's name.
    fn name(&self) -> &'static str;
    /// Runs its sync handlers (see [`Bus::publish`]).
    fn publish_on(&self, bus: &Bus) -> Result<Report, PublishError>;
    /// Fails as [`Bus::publish`] does when the event has durable handlers (a sync publish
    /// cannot store it), without running anything.
    fn check_sync(&self, bus: &Bus) -> Result<(), PublishError>;
    /// Publishes it by reference into an outbox.
    fn publish_ref_into<'a>(&'a self, outbox: &mut Outbox<'a>);
    /// Publishes it into an outbox.
    fn publish_into(self: Box<Self>, outbox: &mut Outbox<'_>);
    /// For typed inspection in tests.
    fn as_any(&self) -> &dyn Any;
}

impl<E: DomainEvent> RecordedEvent for E {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn publish_on(&self, bus: &Bus) -> Result<Report, PublishError> {
        bus.publish(self)
    }

    fn check_sync(&self, bus: &Bus) -> Result<(), PublishError> {
        bus.check_sync::<E>()
    }

    fn publish_ref_into<'a>(&'a self, outbox: &mut Outbox<'a>) {
        outbox.publish_ref(self);
    }

    fn publish_into(self: Box<Self>, outbox: &mut Outbox<'_>) {
        outbox.publish(*self);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Outbox<'_> {
    /// Publishes an aggregate's recorded events in the transaction, in recording order: they
    /// are stored with it and dispatched after its commit.
    pub fn publish_batch(&mut self, batch: EventBatch) {
        batch.publish_into(self);
    }
}

/// Events raised by an aggregate's methods, typed and in order, waiting for the save.
#[derive(Default)]
pub struct EventRecorder {
    events: Vec<Box<dyn RecordedEvent>>,
}

impl fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.events.iter().map(|e| e.name()))
            .finish()
    }
}

impl EventRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an event raised by the aggregate.
    pub fn record<E: DomainEvent>(&mut self, event: E) {
        self.events.push(Box::new(event));
    }

    /// Hands out the recorded events, leaving the recorder empty.
    pub fn take(&mut self) -> EventBatch {
        EventBatch {
            events: std::mem::take(&mut self.events),
        }
    }

    /// Recorded events not yet taken.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// An aggregate that records the events its methods raise.
///
/// ```
/// use events::{AggregateRoot, Bus, DomainEvent, EventRecorder};
///
/// #[derive(DomainEvent)]
/// struct CollectionCreated { name: String }
/// #[derive(DomainEvent)]
/// struct CardAddedToLibrary { card: String }
///
/// #[derive(Default)]
/// struct Library { cards: Vec<String>, events: EventRecorder }
///
/// impl AggregateRoot for Library {
///     fn recorder(&mut self) -> &mut EventRecorder { &mut self.events }
/// }
///
/// impl Library {
///     fn add(&mut self, card: &str) {
///         self.cards.push(card.into());
///         self.events.record(CardAddedToLibrary { card: card.into() });
///     }
/// }
///
/// let mut lib = Library::default();
/// lib.events.record(CollectionCreated { name: "Modern".into() });
/// lib.add("Black Lotus");
/// // A failed save: `?` returns before the events are taken, nothing is dispatched.
/// let saved: Result<((), _), std::io::Error> = lib.save_with(|_| Err(std::io::ErrorKind::Other.into()));
/// assert!(saved.is_err());
/// // A successful one hands them out, in order.
/// let ((), batch) = lib.save_with(|_| Ok::<_, std::io::Error>(())).unwrap();
/// assert_eq!(batch.names(), ["CollectionCreated", "CardAddedToLibrary"]);
/// let reports = batch.publish(&Bus::builder().build().unwrap())?;
/// assert_eq!(reports.len(), 2);
/// # Ok::<(), events::PublishError>(())
/// ```
pub trait AggregateRoot {
    /// The aggregate's recorder.
    fn recorder(&mut self) -> &mut EventRecorder;

    /// Hands out the recorded events; call it after the save succeeded.
    fn take_events(&mut self) -> EventBatch {
        self.recorder().take()
    }

    /// Saves through `save`, then hands out the recorded events. When `save` fails, the events
    /// stay recorded and none is handed out, so nothing is dispatched.
    fn save_with<T, Err>(
        &mut self,
        save: impl FnOnce(&Self) -> Result<T, Err>,
    ) -> Result<(T, EventBatch), Err>
    where
        Self: Sized,
    {
        let saved = save(self)?;
        Ok((saved, self.take_events()))
    }
}

/// Events of mixed types handed out by an aggregate, in recording order.
#[must_use = "an event batch does nothing until it is published or dispatched"]
#[derive(Default)]
pub struct EventBatch {
    events: Vec<Box<dyn RecordedEvent>>,
}

impl fmt::Debug for EventBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl EventBatch {
    /// Runs each event's sync handlers, in recording order; one report per event. Fails,
    /// running nothing, when one of the events has durable handlers (see [`Bus::publish`]):
    /// dispatch the batch, or publish it into the store's outbox.
    pub fn publish(&self, bus: &Bus) -> Result<Vec<Report>, PublishError> {
        for event in &self.events {
            event.check_sync(bus)?;
        }
        self.events.iter().map(|e| e.publish_on(bus)).collect()
    }

    /// Stores the events that have durable handlers in the bus's store, all in one
    /// transaction (or none, and then nothing runs: the error says why), then runs each
    /// event's inline handlers, in recording order, one event after the other.
    pub async fn dispatch(&self, bus: &Bus) -> Result<Vec<Report>, PublishError> {
        let mut outbox = Outbox::new(bus);
        for event in &self.events {
            event.publish_ref_into(&mut outbox);
        }
        outbox.commit(None).await
    }

    /// Moves the events into an outbox, in recording order: they are stored with the outbox's
    /// transaction and dispatched after its commit.
    pub fn publish_into(self, outbox: &mut Outbox<'_>) {
        for event in self.events {
            event.publish_into(outbox);
        }
    }

    /// The events' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.events.iter().map(|e| e.name()).collect()
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there is no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events, type-erased.
    pub fn iter(&self) -> impl Iterator<Item = &dyn RecordedEvent> {
        self.events.iter().map(|e| &**e)
    }

    /// The events of type `E`, in order.
    pub fn of<E: DomainEvent>(&self) -> Vec<&E> {
        self.events
            .iter()
            .filter_map(|e| e.as_any().downcast_ref::<E>())
            .collect()
    }

    /// The `index`-th event, if it is an `E`.
    pub fn get<E: DomainEvent>(&self, index: usize) -> Option<&E> {
        self.events.get(index)?.as_any().downcast_ref()
    }
}
