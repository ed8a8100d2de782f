//! Test fixtures that need no database: `given(events).when(command).then(expected)` for
//! event-sourced aggregates, and [`Capture`] of the events a piece of code published. For recording aggregates, assert on
//! [`take_events`](crate::AggregateRoot::take_events) (see [`EventBatch`](crate::EventBatch)).
//!
//! ```
//! # use serde::{Serialize, Deserialize};
//! # use events::{EventSourced, Handle};
//! # #[derive(events::DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! # struct MoneyWithdrawn { amount: u64 }
//! # #[derive(events::DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! # struct MoneyDeposited { amount: u64 }
//! # events::event_set! {
//! #     #[derive(Debug, Clone, PartialEq)]
//! #     pub enum AccountEvent { Deposited(MoneyDeposited), Withdrawn(MoneyWithdrawn) }
//! # }
//! # #[derive(Default)] struct Account { balance: u64 }
//! # impl EventSourced for Account {
//! #     const TYPE: &'static str = "Account";
//! #     type Event = AccountEvent;
//! #     fn apply(&mut self, e: &AccountEvent) { match e {
//! #         AccountEvent::Deposited(e) => self.balance += e.amount,
//! #         AccountEvent::Withdrawn(e) => self.balance -= e.amount,
//! #     } }
//! # }
//! # struct Withdraw(u64);
//! # #[derive(Debug, PartialEq)] struct Insufficient;
//! # impl Handle<Withdraw> for Account {
//! #     type Error = Insufficient;
//! #     fn handle(&self, c: Withdraw) -> Result<Vec<AccountEvent>, Insufficient> {
//! #         if c.0 > self.balance { return Err(Insufficient) }
//! #         Ok(vec![MoneyWithdrawn { amount: c.0 }.into()])
//! #     }
//! # }
//! use events::testing::given;
//!
//! given::<Account>([MoneyDeposited { amount: 10 }.into()])
//!     .when(Withdraw(4))
//!     .then([MoneyWithdrawn { amount: 4 }.into()]);
//!
//! given::<Account>([MoneyDeposited { amount: 10 }.into()])
//!     .when(Withdraw(40))
//!     .then_error(Insufficient);
//! ```

use std::any::{Any, TypeId};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use crate::aggregate::{EventSourced, Handle};
use crate::meta::Meta;
use crate::DomainEvent;

/// Starts a fixture: the aggregate's history, applied in order.
pub fn given<A: EventSourced>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut aggregate = A::default();
    for event in history {
        aggregate.apply(&event);
    }
    Given { aggregate }
}

/// An aggregate rebuilt from a given history.
#[must_use = "call `.when(command)`"]
pub struct Given<A> {
    aggregate: A,
}

impl<A: EventSourced> Given<A> {
    /// The aggregate handles `command`.
    pub fn when<C>(self, command: C) -> When<A, <A as Handle<C>>::Error>
    where
        A: Handle<C>,
    {
        let outcome = self.aggregate.handle(command);
        When {
            aggregate: self.aggregate,
            outcome,
        }
    }

    /// The rebuilt aggregate, for assertions on its state.
    pub fn aggregate(&self) -> &A {
        &self.aggregate
    }
}

/// The outcome of a command in a fixture.
#[must_use = "call `.then(..)` or `.then_error(..)`"]
pub struct When<A: EventSourced, E> {
    aggregate: A,
    outcome: Result<Vec<A::Event>, E>,
}

impl<A: EventSourced, E: Debug> When<A, E> {
    /// Asserts that the command raised exactly `expected`, in order. Returns the aggregate
    /// with the events applied, for further checks.
    ///
    /// # Panics
    /// When the command was rejected or raised other events.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A
    where
        A::Event: PartialEq + Debug,
    {
        let expected: Vec<_> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "the command raised other events than expected"
                );
                let mut aggregate = self.aggregate;
                for event in &events {
                    aggregate.apply(event);
                }
                aggregate
            }
            Err(e) => panic!("expected events {expected:?}, but the command was rejected: {e:?}"),
        }
    }

    /// Asserts that the command was rejected with `expected`.
    ///
    /// # Panics
    /// When the command succeeded or failed differently.
    #[track_caller]
    pub fn then_error(self, expected: E)
    where
        E: PartialEq,
        A::Event: Debug,
    {
        match self.outcome {
            Ok(events) => panic!("expected error {expected:?}, but the command raised {events:?}"),
            Err(e) => assert_eq!(e, expected, "the command failed differently than expected"),
        }
    }

    /// Asserts that the command was rejected with an error for which `check` holds.
    ///
    /// # Panics
    /// When the command succeeded or `check` is false.
    #[track_caller]
    pub fn then_error_matches(self, check: impl FnOnce(&E) -> bool)
    where
        A::Event: Debug,
    {
        match self.outcome {
            Ok(events) => panic!("expected an error, but the command raised {events:?}"),
            Err(e) => assert!(check(&e), "unexpected error: {e:?}"),
        }
    }
}

/// Captures the events a piece of code publishes through a [`Bus`](crate::Bus), in order:
/// the "clear handlers and assert raised events" of other systems.
///
/// Give it to the builder with [`BusBuilder::capture`](crate::BusBuilder::capture). By default
/// handlers still run; [`without_handlers`](Capture::without_handlers) records only. Names and
/// metadata of every event are kept; the events themselves for the types asked for with
/// [`keep`](Capture::keep) (they must be `Clone`).
///
/// ```
/// use events::{Bus, DomainEvent, event_handler, testing::Capture};
///
/// #[derive(DomainEvent, Clone, Debug, PartialEq)]
/// struct CardAddedToLibrary { card: String }
///
/// #[event_handler]
/// fn never_runs_here(_: &CardAddedToLibrary) { unreachable!() }
///
/// let capture = Capture::new().without_handlers().keep::<CardAddedToLibrary>();
/// let bus = Bus::builder().capture(&capture).build().unwrap();
/// let _ = bus.publish(&CardAddedToLibrary { card: "Black Lotus".into() });
/// assert_eq!(capture.names(), ["CardAddedToLibrary"]);
/// assert_eq!(capture.events::<CardAddedToLibrary>(), [CardAddedToLibrary { card: "Black Lotus".into() }]);
/// ```
#[derive(Clone, Default)]
pub struct Capture {
    inner: Arc<CaptureInner>,
}

#[derive(Default)]
struct CaptureInner {
    mute: bool,
    keep: Vec<(TypeId, Keeper)>,
    seen: Mutex<Vec<Captured>>,
}

type Keeper = fn(&dyn Any) -> Box<dyn Any + Send>;

/// One captured event.
pub struct Captured {
    name: &'static str,
    meta: Meta,
    event: Option<Box<dyn Any + Send>>,
}

impl Captured {
    /// The event's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its envelope metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The event, if its type was kept and is `E`.
    pub fn get<E: DomainEvent>(&self) -> Option<&E> {
        self.event.as_ref()?.downcast_ref()
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Capture {
    /// A capture that records every event and lets handlers run.
    pub fn new() -> Self {
        Self::default()
    }

    fn configure(self, change: impl FnOnce(&mut CaptureInner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| CaptureInner {
            mute: shared.mute,
            keep: shared.keep.clone(),
            seen: Mutex::new(Vec::new()),
        });
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Handlers do not run: events are only recorded.
    pub fn without_handlers(self) -> Self {
        self.configure(|c| c.mute = true)
    }

    /// Keeps a clone of every event of type `E`, for [`events`](Capture::events).
    pub fn keep<E: DomainEvent + Clone>(self) -> Self {
        fn keeper<E: DomainEvent + Clone>(event: &dyn Any) -> Box<dyn Any + Send> {
            Box::new(event.downcast_ref::<E>().expect("kept by type id").clone())
        }
        self.configure(|c| c.keep.push((TypeId::of::<E>(), keeper::<E>)))
    }

    /// Records an event; `true` when handlers must not run.
    pub(crate) fn observe<E: DomainEvent>(&self, event: &E, meta: &Meta) -> bool {
        let id = TypeId::of::<E>();
        let kept = self
            .inner
            .keep
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, keep)| keep(event));
        self.lock().push(Captured {
            name: E::NAME,
            meta: meta.clone(),
            event: kept,
        });
        self.inner.mute
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Captured>> {
        self.inner.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The names of the events published so far, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.lock().iter().map(|c| c.name).collect()
    }

    /// The kept events of type `E` published so far, in order.
    pub fn events<E: DomainEvent + Clone>(&self) -> Vec<E> {
        self.lock()
            .iter()
            .filter_map(|c| c.get::<E>().cloned())
            .collect()
    }

    /// Takes every captured event, leaving the capture empty.
    pub fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.lock())
    }

    /// Forgets what was captured.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

impl crate::BusBuilder {
    /// Records every event this bus publishes into `capture` (for tests).
    pub fn capture(mut self, capture: &Capture) -> Self {
        self.tap = Some(capture.clone());
        self
    }
}
