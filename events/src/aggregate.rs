//! Aggregates: recording the events their methods raise, and rebuilding event-sourced ones
//! from their stream.
//!
//! - A *recording* aggregate keeps an [`EventRecorder`]; its methods
//!   [`record`](EventRecorder::record) events of any [`DomainEvent`] type. After the repository
//!   saved it, [`AggregateRoot::take_events`] hands them out as an [`EventBatch`], which
//!   dispatches each event, in recording order, to its own type's handlers.
//! - An *event-sourced* aggregate ([`EventSourced`]) lists its events in an enum made with
//!   [`event_set!`](crate::event_set), rebuilds itself through `apply`, and decides new
//!   events in [`Handle::handle`]. A [`Repository`] loads it with its version and appends with
//!   the expected version.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use crate::bus::Bus;
use crate::handler::BoxFuture;
use crate::meta::Meta;
use crate::report::Report;
use crate::store::{EventMetadata, EventStore, NewEvent, StoreError, StoredEvent, StreamId};
use crate::DomainEvent;

/// An event of any type, recorded by an aggregate; object safe, so a batch can mix types.
///
/// Implemented for every [`DomainEvent`]: publishing goes through `bus.publish::<E>`, that
/// is, the event type's own static handler list.
pub trait RecordedEvent: Any + Send + Sync {
    /// The event's name.
    fn name(&self) -> &'static str;
    /// Runs its sync handlers (see [`Bus::publish`]).
    fn publish_on(&self, bus: &Bus) -> Report;
    /// Runs all of its handlers (see [`Bus::dispatch`]).
    fn dispatch_on<'a>(&'a self, bus: &'a Bus) -> BoxFuture<'a, Report>;
    /// For typed inspection in tests.
    fn as_any(&self) -> &dyn Any;
}

impl<E: DomainEvent> RecordedEvent for E {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn publish_on(&self, bus: &Bus) -> Report {
        bus.publish(self)
    }

    fn dispatch_on<'a>(&'a self, bus: &'a Bus) -> BoxFuture<'a, Report> {
        Box::pin(bus.dispatch(self))
    }

    fn as_any(&self) -> &dyn Any {
        self
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
/// let reports = batch.publish(&Bus::builder().build().unwrap());
/// assert_eq!(reports.len(), 2);
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
    /// Runs each event's sync handlers, in recording order; one report per event.
    pub fn publish(&self, bus: &Bus) -> Vec<Report> {
        self.events.iter().map(|e| e.publish_on(bus)).collect()
    }

    /// Runs each event's handlers, in recording order, one event after the other.
    pub async fn dispatch(&self, bus: &Bus) -> Vec<Report> {
        let mut reports = Vec::with_capacity(self.events.len());
        for event in &self.events {
            reports.push(event.dispatch_on(bus).await);
        }
        reports
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

/// The events of one event-sourced aggregate: an enum made by [`event_set!`](crate::event_set),
/// one variant per event type. Stored and dispatched as the variant's own event type.
pub trait EventSet: Send + Sync + Sized + 'static {
    /// The variant's event name.
    fn name(&self) -> &'static str;
    /// Serializes the variant as a new event of the store.
    fn to_new_event(&self, metadata: EventMetadata) -> Result<NewEvent, StoreError>;
    /// Decodes a stored payload; `Ok(None)` when `name` is not one of the set's events.
    fn from_json(name: &str, payload: serde_json::Value)
        -> Result<Option<Self>, serde_json::Error>;
    /// Runs the variant's sync handlers, with `meta`.
    fn publish_with(&self, bus: &Bus, stored: &StoredEvent) -> Report;
    /// Runs all of the variant's handlers, with the stored event's metadata.
    fn dispatch_stored<'a>(
        &'a self,
        bus: &'a Bus,
        stored: &'a StoredEvent,
    ) -> BoxFuture<'a, Report>;
}

/// `E` is one of the events of the set `S`: an aggregate whose events are `S` can raise `E`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not one of the events of `{S}`",
    label = "the aggregate cannot raise or apply `{Self}`",
    note = "add a variant holding `{Self}` to the `events::event_set!` that defines `{S}`, and handle it in `apply`"
)]
pub trait EventOf<S: EventSet>: DomainEvent + Into<S> {}

/// What [`event_set!`](crate::event_set) needs of each event type: a [`DomainEvent`] that serde
/// can serialize and deserialize. Generated code only reads [`SetMember::FNS`], so a type that
/// misses one of these traits gets one error, not one per use.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an event of an `event_set!`",
    label = "must derive `DomainEvent`, `Serialize` and `Deserialize`",
    note = "events of an event-sourced aggregate are stored as JSON: add `#[derive(events::DomainEvent, serde::Serialize, serde::Deserialize)]` to `{Self}`"
)]
pub trait SetMember: Sized {
    const FNS: MemberFns<Self>;
}

/// The operations an event set performs on one of its event types.
#[doc(hidden)]
pub struct MemberFns<E> {
    pub name: &'static str,
    pub to_new_event: fn(&E, EventMetadata) -> Result<NewEvent, StoreError>,
    pub from_json: fn(serde_json::Value) -> Result<E, serde_json::Error>,
    pub publish: fn(&E, &Bus, &StoredEvent) -> Report,
    pub dispatch: for<'a> fn(&'a E, &'a Bus, &'a StoredEvent) -> BoxFuture<'a, Report>,
}

impl<E: DomainEvent + serde::Serialize + serde::de::DeserializeOwned> SetMember for E {
    const FNS: MemberFns<E> = MemberFns {
        name: E::NAME,
        to_new_event: NewEvent::new::<E>,
        from_json: serde_json::from_value::<E>,
        publish: publish_stored::<E>,
        dispatch: dispatch_stored::<E>,
    };
}

fn publish_stored<E: DomainEvent>(event: &E, bus: &Bus, stored: &StoredEvent) -> Report {
    bus.publish_with(event, stored.meta::<E>())
}

fn dispatch_stored<'a, E: DomainEvent>(
    event: &'a E,
    bus: &'a Bus,
    stored: &'a StoredEvent,
) -> BoxFuture<'a, Report> {
    Box::pin(bus.dispatch_with(event, stored.meta::<E>()))
}

/// Defines the enum of an event-sourced aggregate's events, one variant per event type.
///
/// Each type must derive `DomainEvent`, `serde::Serialize` and `serde::Deserialize`. The macro
/// adds `From<Event>` for every variant and implements [`EventSet`] and [`EventOf`], so
/// raising an event that is not in the set does not compile.
///
/// ```
/// # use serde::{Serialize, Deserialize};
/// # #[derive(events::DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// # struct AccountOpened { owner: String }
/// # #[derive(events::DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// # struct MoneyDeposited { amount: u64 }
/// events::event_set! {
///     #[derive(Debug, Clone, PartialEq)]
///     pub enum AccountEvent {
///         Opened(AccountOpened),
///         Deposited(MoneyDeposited),
///     }
/// }
/// let e: AccountEvent = MoneyDeposited { amount: 5 }.into();
/// assert_eq!(events::EventSet::name(&e), "MoneyDeposited");
/// ```
#[macro_export]
macro_rules! event_set {
    (
        $(#[$attr:meta])*
        $vis:vis enum $set:ident {
            $( $(#[$vattr:meta])* $variant:ident($event:ty) ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis enum $set {
            $( $(#[$vattr])* #[allow(missing_docs)] $variant($event), )+
        }

        $(
            impl ::core::convert::From<$event> for $set {
                #[inline]
                fn from(event: $event) -> Self {
                    $set::$variant(event)
                }
            }

            impl $crate::EventOf<$set> for $event {}
        )+

        impl $crate::EventSet for $set {
            fn name(&self) -> &'static str {
                match self {
                    $( $set::$variant(_) => <$event as $crate::__private::SetMember>::FNS.name, )+
                }
            }

            fn to_new_event(
                &self,
                metadata: $crate::store::EventMetadata,
            ) -> ::core::result::Result<$crate::store::NewEvent, $crate::store::StoreError> {
                match self {
                    $( $set::$variant(event) => (<$event as $crate::__private::SetMember>::FNS.to_new_event)(event, metadata), )+
                }
            }

            fn from_json(
                name: &str,
                payload: $crate::__private::serde_json::Value,
            ) -> ::core::result::Result<::core::option::Option<Self>, $crate::__private::serde_json::Error> {
                $(
                    if name == <$event as $crate::__private::SetMember>::FNS.name {
                        return (<$event as $crate::__private::SetMember>::FNS.from_json)(payload)
                            .map(|event| ::core::option::Option::Some($set::$variant(event)));
                    }
                )+
                ::core::result::Result::Ok(::core::option::Option::None)
            }

            fn publish_with(
                &self,
                bus: &$crate::Bus,
                stored: &$crate::store::StoredEvent,
            ) -> $crate::Report {
                match self {
                    $( $set::$variant(event) => (<$event as $crate::__private::SetMember>::FNS.publish)(event, bus, stored), )+
                }
            }

            fn dispatch_stored<'a>(
                &'a self,
                bus: &'a $crate::Bus,
                stored: &'a $crate::store::StoredEvent,
            ) -> $crate::__private::BoxFuture<'a, $crate::Report> {
                match self {
                    $( $set::$variant(event) => (<$event as $crate::__private::SetMember>::FNS.dispatch)(event, bus, stored), )+
                }
            }
        }
    };
}

/// An aggregate rebuilt from its event stream.
///
/// ```
/// # use serde::{Serialize, Deserialize};
/// use events::{EventSourced, Handle};
/// # #[derive(events::DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// # struct MoneyDeposited { amount: u64 }
/// events::event_set! {
///     #[derive(Debug, Clone, PartialEq)]
///     pub enum AccountEvent { Deposited(MoneyDeposited) }
/// }
///
/// #[derive(Default)]
/// struct Account { balance: u64 }
///
/// impl EventSourced for Account {
///     const TYPE: &'static str = "Account";
///     type Event = AccountEvent;
///     fn apply(&mut self, event: &AccountEvent) {
///         match event {
///             AccountEvent::Deposited(e) => self.balance += e.amount,
///         }
///     }
/// }
///
/// struct Deposit(u64);
/// impl Handle<Deposit> for Account {
///     type Error = String;
///     fn handle(&self, cmd: Deposit) -> Result<Vec<AccountEvent>, String> {
///         Ok(vec![MoneyDeposited { amount: cmd.0 }.into()])
///     }
/// }
///
/// events::testing::given::<Account>([MoneyDeposited { amount: 5 }.into()])
///     .when(Deposit(2))
///     .then([MoneyDeposited { amount: 2 }.into()]);
/// ```
pub trait EventSourced: Default + Send + Sync + 'static {
    /// The aggregate type, stored with every event of its streams.
    const TYPE: &'static str;
    /// The aggregate's events, made with [`event_set!`](crate::event_set).
    type Event: EventSet;
    /// Applies one event to the state. It must not fail: the event already happened.
    fn apply(&mut self, event: &Self::Event);
}

/// An event-sourced aggregate handles a command: it decides which events happen, from its
/// state, without changing it.
pub trait Handle<C>: EventSourced {
    /// Why the aggregate rejects a command.
    type Error;
    /// Decides the events the command causes.
    fn handle(&self, command: C) -> Result<Vec<Self::Event>, Self::Error>;
}

/// Loads event-sourced aggregates of type `A` from a store and appends their new events.
pub struct Repository<A, S> {
    store: S,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A, S: Clone> Clone for Repository<A, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A, S: fmt::Debug> fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("aggregate", &std::any::type_name::<A>())
            .field("store", &self.store)
            .finish()
    }
}

/// A command executed by [`Repository::execute`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E> {
    /// The aggregate rejected the command; shown with the aggregate's own message.
    #[error("{0}")]
    Rejected(E),
    /// Loading or appending failed; a [`StoreError::Conflict`] means another writer won.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The events a command appended, with their stored envelopes; dispatch them after the commit.
#[must_use = "committed events are not dispatched until `dispatch` or `publish` is called"]
#[derive(Debug)]
pub struct Committed<S> {
    /// The aggregate's version after the append.
    pub version: u64,
    /// Each event, typed, with how it was stored.
    pub events: Vec<(S, StoredEvent)>,
}

impl<S: EventSet> Committed<S> {
    /// Runs every event's handlers, in order, with the stored metadata (so handlers see the
    /// stored event id and can be idempotent).
    pub async fn dispatch(&self, bus: &Bus) -> Vec<Report> {
        let mut reports = Vec::with_capacity(self.events.len());
        for (event, stored) in &self.events {
            reports.push(event.dispatch_stored(bus, stored).await);
        }
        reports
    }

    /// Runs every event's sync handlers, in order, with the stored metadata.
    pub fn publish(&self, bus: &Bus) -> Vec<Report> {
        self.events
            .iter()
            .map(|(event, stored)| event.publish_with(bus, stored))
            .collect()
    }
}

impl<A: EventSourced, S: EventStore> Repository<A, S> {
    /// A repository over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            _aggregate: PhantomData,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn stream(id: &str) -> StreamId<'_> {
        StreamId {
            aggregate_type: A::TYPE,
            aggregate_id: id,
        }
    }

    /// Rebuilds the aggregate from its stream: the aggregate and its version (0 when the
    /// stream is empty, `A::default()` then).
    pub async fn load(&self, id: &str) -> Result<(A, u64), StoreError> {
        let stream = self.store.read_stream(Self::stream(id)).await?;
        let mut aggregate = A::default();
        let mut version = 0;
        for stored in &stream {
            let event = stored
                .decode::<A::Event>()?
                .ok_or_else(|| StoreError::Decode {
                    position: stored.position,
                    name: stored.name.clone(),
                    source: serde::de::Error::custom(format!(
                        "`{}` is not an event of aggregate `{}`",
                        stored.name,
                        A::TYPE
                    )),
                })?;
            aggregate.apply(&event);
            version = stored.sequence;
        }
        Ok((aggregate, version))
    }

    /// Appends events to the aggregate's stream, expecting it at `expected_version`; a
    /// concurrent append fails with [`StoreError::Conflict`] and writes nothing.
    pub async fn append(
        &self,
        id: &str,
        expected_version: u64,
        events: Vec<A::Event>,
        metadata: EventMetadata,
    ) -> Result<Committed<A::Event>, StoreError> {
        let new = events
            .iter()
            .map(|e| e.to_new_event(metadata.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let stored = self
            .store
            .append(Self::stream(id), expected_version, new)
            .await?;
        let version = stored.last().map_or(expected_version, |s| s.sequence);
        Ok(Committed {
            version,
            events: events.into_iter().zip(stored).collect(),
        })
    }

    /// Loads the aggregate, lets it handle `command`, and appends the events it decided with
    /// the version it was loaded at. `cause` is the command's metadata (a command handler's
    /// `meta: Meta` parameter), recorded as the events' correlation and causation.
    pub async fn execute<C>(
        &self,
        id: &str,
        command: C,
        cause: Option<&Meta>,
    ) -> Result<Committed<A::Event>, ExecuteError<<A as Handle<C>>::Error>>
    where
        A: Handle<C>,
    {
        let (aggregate, version) = self.load(id).await?;
        let events = aggregate.handle(command).map_err(ExecuteError::Rejected)?;
        let metadata = cause.map(EventMetadata::caused_by).unwrap_or_default();
        Ok(self.append(id, version, events, metadata).await?)
    }
}
