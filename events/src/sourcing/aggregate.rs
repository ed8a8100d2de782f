//! Event-sourced aggregates: rebuilt from their stream through `apply`, deciding new events in
//! an async [`Handle::handle`] that receives the aggregate's [`Services`].

use std::future::Future;
use std::sync::Arc;

use crate::bus::Bus;
use crate::extract::Requirement;
use crate::report::ExtractError;
use crate::sourcing::set::EventSet;
use crate::sourcing::snapshot::Snapshots;

/// An aggregate rebuilt from its event stream.
///
/// ```
/// use events::{DomainEvent, EventSet, EventSourced, Handle};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(DomainEvent, EventSet, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// enum AccountEvent {
///     Deposited { amount: u64 },
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
///             AccountEvent::Deposited { amount } => self.balance += amount,
///         }
///     }
/// }
///
/// struct Deposit(u64);
/// impl Handle<Deposit> for Account {
///     type Error = String;
///     type Services = ();
///     async fn handle(&self, cmd: Deposit, _: &()) -> Result<Vec<AccountEvent>, String> {
///         Ok(vec![AccountEvent::Deposited { amount: cmd.0 }])
///     }
/// }
///
/// events::testing::given::<Account>([AccountEvent::Deposited { amount: 5 }])
///     .when(Deposit(2))
///     .then([AccountEvent::Deposited { amount: 2 }]);
/// ```
pub trait EventSourced: Default + Send + Sync + 'static {
    /// The aggregate type, stored with every event of its streams.
    const TYPE: &'static str;
    /// The aggregate's events: an [`EventSet`].
    type Event: EventSet;
    /// Applies one event to the state. It must not fail: the event already happened.
    fn apply(&mut self, event: &Self::Event);

    /// Whether and how often to save snapshots of the state (default: never). Long streams
    /// then load from the last snapshot instead of their first event.
    fn snapshots() -> Option<Snapshots<Self>> {
        None
    }
}

/// An event-sourced aggregate handles a command: it decides which events happen, from its
/// state (without changing it) and with the help of its services (an ATM, a check
/// validator...), which may be async.
pub trait Handle<C>: EventSourced {
    /// Why the aggregate rejects a command.
    type Error;
    /// What the decision needs besides the state: `()` for nothing, or a type of yours that
    /// implements [`Services`] and is given to the bus as a resource (in tests: a mock, given
    /// to the fixture).
    ///
    /// `handle` runs once per command: when another writer appended between the load and the
    /// append, the command fails with the conflict. A command routed with
    /// `#[command(aggregate = .., retry_on_conflict = N)]` (or executed by a
    /// `Repository::retry_on_conflict(N)`) runs again on the new state instead, up to `N` more
    /// times, and each run calls the services again.
    type Services: Services;
    /// Decides the events the command causes.
    fn handle(
        &self,
        command: C,
        services: &Self::Services,
    ) -> impl Future<Output = Result<Vec<Self::Event>, Self::Error>> + Send;
}

/// The services an aggregate's command handling receives. `()` needs none; a `Box<dyn Trait>`
/// or `Arc<..>` is ready to use; a type of yours needs one line,
/// `impl events::Services for BankServices {}`. The bus gets them with
/// `Bus::builder().resource(..)` (checked at start-up, like a handler's `Res<T>`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an aggregate's services",
    label = "does not implement `events::Services`",
    note = "add `impl events::Services for {Self} {{}}` and provide it with `Bus::builder().resource(..)`, or use `()` when the aggregate needs no services"
)]
pub trait Services: Send + Sync + Sized + 'static {
    /// The resource the bus must hold, checked when it is built.
    const REQUIRES: Option<Requirement> = Some(Requirement::resource::<Self>());

    /// The services, from the bus's resources.
    fn from_bus(bus: &Bus) -> Result<Arc<Self>, ExtractError> {
        bus.resource::<Self>()
            .ok_or(ExtractError::MissingResource(std::any::type_name::<Self>()))
    }
}

/// Services behind a trait object (`Box<dyn BankApi>`): a real one in the bus, a mock in tests.
impl<T: ?Sized + Send + Sync + 'static> Services for Box<T> {}

/// Shared services.
impl<T: ?Sized + Send + Sync + 'static> Services for Arc<T> {}

impl Services for () {
    const REQUIRES: Option<Requirement> = None;

    fn from_bus(_: &Bus) -> Result<Arc<Self>, ExtractError> {
        Ok(Arc::new(()))
    }
}
