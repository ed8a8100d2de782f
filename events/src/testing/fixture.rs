//! `given(history).with(services).when(command).then(expected)`: an aggregate's decisions,
//! tested without a store or a bus.
//!
//! ```
//! use events::{DomainEvent, EventSet, EventSourced, Handle, Services};
//! use events::testing::given;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(DomainEvent, EventSet, Serialize, Deserialize, Debug, Clone, PartialEq)]
//! enum AccountEvent {
//!     Deposited { amount: u64 },
//!     Withdrawn { amount: u64 },
//! }
//!
//! #[derive(Default)]
//! struct Account { balance: u64 }
//! impl EventSourced for Account {
//!     const TYPE: &'static str = "Account";
//!     type Event = AccountEvent;
//!     fn apply(&mut self, e: &AccountEvent) {
//!         match e {
//!             AccountEvent::Deposited { amount } => self.balance += amount,
//!             AccountEvent::Withdrawn { amount } => self.balance -= amount,
//!         }
//!     }
//! }
//!
//! /// The cash machine, mocked in tests.
//! struct Atm { works: bool }
//! impl Services for Atm {}
//!
//! #[derive(Debug, thiserror::Error)]
//! enum Refused {
//!     #[error("funds not available")]
//!     NoFunds,
//!     #[error("the ATM refused")]
//!     Atm,
//! }
//!
//! struct Withdraw(u64);
//! impl Handle<Withdraw> for Account {
//!     type Error = Refused;
//!     type Services = Atm;
//!     async fn handle(&self, c: Withdraw, atm: &Atm) -> Result<Vec<AccountEvent>, Refused> {
//!         if c.0 > self.balance { return Err(Refused::NoFunds) }
//!         if !atm.works { return Err(Refused::Atm) }
//!         Ok(vec![AccountEvent::Withdrawn { amount: c.0 }])
//!     }
//! }
//!
//! given::<Account>([AccountEvent::Deposited { amount: 10 }])
//!     .with(Atm { works: true })
//!     .when(Withdraw(4))
//!     .then([AccountEvent::Withdrawn { amount: 4 }]);
//!
//! given::<Account>([AccountEvent::Deposited { amount: 10 }])
//!     .with(Atm { works: false })
//!     .when(Withdraw(4))
//!     .then_error_message("the ATM refused");
//! ```

use std::fmt::{Debug, Display};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::sourcing::{EventSourced, Handle, Services};

/// Starts a fixture: the aggregate's history, applied in order. Items may be the set's own
/// variants or anything that converts into them (an event type of an `event_set!`).
pub fn given<A: EventSourced>(
    history: impl IntoIterator<Item = impl Into<A::Event>>,
) -> Given<A, ()> {
    let mut aggregate = A::default();
    for event in history {
        aggregate.apply(&event.into());
    }
    Given {
        aggregate,
        services: (),
    }
}

/// Starts a fixture on a new aggregate, with no history.
pub fn given_no_events<A: EventSourced>() -> Given<A, ()> {
    Given {
        aggregate: A::default(),
        services: (),
    }
}

/// An aggregate rebuilt from a given history, with the services its handling receives.
#[must_use = "call `.when(command)`"]
pub struct Given<A, S = ()> {
    aggregate: A,
    services: S,
}

impl<A: EventSourced, S: Services> Given<A, S> {
    /// The services (usually mocks) the aggregate's handling receives.
    pub fn with<T: Services>(self, services: T) -> Given<A, T> {
        Given {
            aggregate: self.aggregate,
            services,
        }
    }

    /// The aggregate handles `command`; its future is run to completion here, so the
    /// services must not need an async runtime (see [`when_async`](Self::when_async)).
    pub fn when<C>(self, command: C) -> When<A, <A as Handle<C>>::Error>
    where
        A: Handle<C, Services = S>,
    {
        let outcome = block_on(self.aggregate.handle(command, &self.services));
        When {
            aggregate: self.aggregate,
            outcome,
        }
    }

    /// Like [`when`](Self::when), awaited on the caller's runtime (for services that need
    /// one).
    pub async fn when_async<C>(self, command: C) -> When<A, <A as Handle<C>>::Error>
    where
        A: Handle<C, Services = S>,
    {
        let outcome = self.aggregate.handle(command, &self.services).await;
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
#[must_use = "call `.then(..)`, `.then_error..(..)` or `.result()`"]
pub struct When<A: EventSourced, E> {
    aggregate: A,
    outcome: Result<Vec<A::Event>, E>,
}

impl<A: EventSourced, E: Debug> When<A, E> {
    /// Asserts that the command raised exactly `expected`, in order. Returns the aggregate
    /// with the events applied, for further checks.
    ///
    /// # Panics
    /// When the command was rejected or raised other events; the message shows the expected
    /// and the actual events.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = impl Into<A::Event>>) -> A
    where
        A::Event: PartialEq + Debug,
    {
        let expected: Vec<A::Event> = expected.into_iter().map(Into::into).collect();
        match self.outcome {
            Ok(events) if events == expected => {
                let mut aggregate = self.aggregate;
                for event in &events {
                    aggregate.apply(event);
                }
                aggregate
            }
            Ok(events) => panic!(
                "the command raised other events than expected\n  expected: {expected:?}\n    actual: {events:?}"
            ),
            Err(e) => panic!(
                "the command was rejected, but events were expected\n  expected: {expected:?}\n  rejected: {e:?}"
            ),
        }
    }

    /// Asserts that the command raised no event (and was not rejected).
    ///
    /// # Panics
    /// When it raised events or was rejected.
    #[track_caller]
    pub fn then_no_events(self) -> A
    where
        A::Event: PartialEq + Debug,
    {
        self.then(Vec::<A::Event>::new())
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
            Err(e) if e == expected => {}
            Err(e) => panic!(
                "the command failed differently than expected\n  expected: {expected:?}\n    actual: {e:?}"
            ),
            Ok(events) => panic!(
                "the command succeeded, but an error was expected\n  expected: {expected:?}\n    raised: {events:?}"
            ),
        }
    }

    /// Asserts that the command was rejected with an error whose message (`Display`) is
    /// `expected`; the error type needs no `PartialEq`.
    ///
    /// # Panics
    /// When the command succeeded or its error says something else.
    #[track_caller]
    pub fn then_error_message(self, expected: &str)
    where
        E: Display,
        A::Event: Debug,
    {
        match self.outcome {
            Err(e) if e.to_string() == expected => {}
            Err(e) => panic!(
                "the command failed with another message than expected\n  expected: {expected:?}\n    actual: {:?} ({e:?})",
                e.to_string()
            ),
            Ok(events) => panic!(
                "the command succeeded, but the error {expected:?} was expected\n    raised: {events:?}"
            ),
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

    /// The outcome, for assertions of your own.
    pub fn result(&self) -> Result<&[A::Event], &E> {
        self.outcome.as_deref()
    }

    /// The outcome and the aggregate as it was before the command.
    pub fn into_parts(self) -> (A, Result<Vec<A::Event>, E>) {
        (self.aggregate, self.outcome)
    }
}

/// Runs a future to completion on this thread, parking while it waits.
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}
