//! Commands routed to their aggregate: `#[derive(Command)] #[command(aggregate = Account)]`
//! registers one generic handler for the command (so a hand-written one is still a compile
//! error), which loads the aggregate from the bus's event store, lets it decide with its
//! services, appends with optimistic concurrency (a conflict is an error unless the command opts
//! in to `retry_on_conflict`), and dispatches the stored events.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;

use crate::bus::{Bus, BusBuilder};
use crate::catalog::Location;
use crate::command::{
    Command, CommandCall, CommandHandler, CommandOutcome, HandledCommand, SendError,
};
use crate::extract::{Context, Requirement};
use crate::handler::BoxFuture;
use crate::meta::Meta;
use crate::registry::Registration;
use crate::report::ExtractError;
use crate::sourcing::aggregate::{EventSourced, Handle, Services};
use crate::sourcing::repository::{ExecuteError, Repository};
use crate::store::{
    EventMetadata, EventStore, NewEvent, StoreError, StoredEvent, StoredSnapshot, StreamId,
    StreamVersion,
};

/// A command that targets one instance of an event-sourced aggregate. Implemented by
/// `#[derive(Command)]` with `#[command(aggregate = Type)]`; the id comes from the field
/// marked `#[command(id)]` or from [`Bus::send_to`].
///
/// The routing handler loads the aggregate, calls its [`Handle::handle`] with the aggregate's
/// services, and appends the events with the version it loaded. When another writer appended
/// in between, nothing is written and the command fails with
/// [`SendError::Conflict`]: it is not run again, because running it again calls the services
/// again (an ATM would pay out twice). A command whose services are safe to call again opts in
/// with `#[command(aggregate = Type, retry_on_conflict = N)]`: after a conflict it is run
/// again on the new state, services included, up to `N` more times (so its services run at
/// most `N + 1` times).
pub trait AggregateCommand: Command + Clone + Sync {
    /// The aggregate that handles the command.
    type Aggregate: Handle<Self>;
    /// How many times the command is run again (services included) after it lost an append
    /// race: `#[command(retry_on_conflict = N)]`, default 0.
    const RETRY_ON_CONFLICT: u32 = 0;
    /// The id in the field marked `#[command(id)]`, if the command (or its variant) has one.
    fn aggregate_id(&self) -> Option<String>;
}

/// `AggregateCommand::aggregate_id` of a command whose id is its field `$field` (a name or an
/// index), for the derive's output.
#[doc(hidden)]
#[macro_export]
macro_rules! __aggregate_id_field {
    ($field:tt) => {
        fn aggregate_id(&self) -> ::core::option::Option<::std::string::String> {
            $crate::__private::aggregate_id(&self.$field)
        }
    };
}

/// A routed command has its one handler: the routing one its derive registers. Not
/// recommended: a command without a handler is reported as such, not as a missing
/// `AggregateCommand`.
#[diagnostic::do_not_recommend]
impl<C: AggregateCommand> HandledCommand for C {}

/// The error of a command routed to `C`'s aggregate: the aggregate's own
/// [`Handle::Error`], so `SendError::rejected` is its refusal and nothing else (conflicts and
/// store failures are [`SendError`]'s own variants).
pub type RoutedError<C> = <<C as AggregateCommand>::Aggregate as Handle<C>>::Error;

/// Any [`EventStore`], shared: what the bus holds for routed commands
/// (`Bus::builder().event_store(store)`).
#[derive(Clone)]
pub struct SharedStore(Arc<dyn DynStore>);

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedStore")
    }
}

impl SharedStore {
    /// Shares `store`.
    pub fn new(store: impl EventStore + 'static) -> Self {
        Self(Arc::new(store))
    }
}

/// [`EventStore`] made object-safe: its futures boxed by `async_trait` (as [`DurableStore`]'s
/// are), so one store type serves every aggregate.
///
/// [`DurableStore`]: crate::store::DurableStore
#[async_trait]
trait DynStore: Send + Sync {
    async fn append(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    async fn read_stream(&self, stream: StreamId<'_>) -> Result<Vec<StoredEvent>, StoreError>;
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    async fn read_stream_after(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    async fn load_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError>;
    async fn save_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<bool, StoreError>;
}

#[async_trait]
impl<T: EventStore + 'static> DynStore for T {
    async fn append(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        EventStore::append(self, at, events).await
    }
    async fn read_stream(&self, stream: StreamId<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        EventStore::read_stream(self, stream).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        EventStore::read_all(self, after, limit).await
    }
    async fn read_stream_after(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        EventStore::read_stream_after(self, stream, after).await
    }
    async fn load_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        EventStore::load_snapshot(self, stream).await
    }
    async fn save_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<bool, StoreError> {
        EventStore::save_snapshot(self, stream, snapshot).await
    }
}

impl EventStore for SharedStore {
    async fn append(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.append(at, events).await
    }
    async fn read_stream(&self, stream: StreamId<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.read_stream(stream).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.read_all(after, limit).await
    }
    async fn read_stream_after(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.read_stream_after(stream, after).await
    }
    async fn load_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        self.0.load_snapshot(stream).await
    }
    async fn save_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<bool, StoreError> {
        self.0.save_snapshot(stream, snapshot).await
    }
}

impl BusBuilder {
    /// The event store that commands routed to aggregates load from and append to.
    pub fn event_store(self, store: impl EventStore + 'static) -> Self {
        self.resource(SharedStore::new(store))
    }
}

/// Load, decide, append (re-running on a conflict only when the command opts in), dispatch:
/// the one place a routed command runs. `id` overrides the command's own `#[command(id)]`
/// field.
async fn run_routed<C>(bus: &Bus, id: Option<String>, command: C, cause: &Meta) -> CommandOutcome<C>
where
    C: AggregateCommand + Command<Output = u64, Error = RoutedError<C>>,
{
    let aggregate = <C::Aggregate as EventSourced>::TYPE;
    // `bus.send` takes only commands with an id field (`Addressed`), `send_to` gives one: this
    // is reached only through a handler call that bypassed both.
    let Some(id) = id.or_else(|| command.aggregate_id()) else {
        return Err(SendError::Extract(ExtractError::Other(format!(
            "command `{}` carries no id of its aggregate `{aggregate}`: send it with `bus.send_to(id, command)`, or mark the field that holds the id `#[command(id)]`",
            C::NAME
        ))));
    };
    let Some(store) = bus.resource::<SharedStore>() else {
        return Err(SendError::Extract(ExtractError::Other(format!(
            "command `{}` is routed to aggregate `{aggregate}`, which needs an event store: call `Bus::builder().event_store(store)`",
            C::NAME
        ))));
    };
    let services = <<C::Aggregate as Handle<C>>::Services as Services>::from_bus(bus)?;
    let repository = Repository::<C::Aggregate, SharedStore>::new((*store).clone())
        .retry_on_conflict(C::RETRY_ON_CONFLICT);
    let metadata = EventMetadata::caused_by(cause);
    let committed = match repository.execute(&id, command, &services, metadata).await {
        Ok(committed) => committed,
        Err(ExecuteError::Rejected(e)) => return Err(SendError::Rejected(e)),
        Err(ExecuteError::Conflict {
            aggregate_type,
            aggregate_id,
            expected,
            actual,
        }) => {
            return Err(SendError::Conflict {
                aggregate_type,
                aggregate_id,
                expected,
                actual,
            })
        }
        Err(ExecuteError::Store(e)) => return Err(SendError::Store(Box::new(e))),
    };
    committed.dispatch(bus).await;
    Ok(committed.version)
}

/// The handler `#[derive(Command)]` registers for a command routed to its aggregate.
fn route_command<'a, C>(command: C, cx: &'a Context<'a>) -> BoxFuture<'a, CommandOutcome<C>>
where
    C: AggregateCommand + Command<Output = u64, Error = RoutedError<C>>,
{
    Box::pin(async move { run_routed(cx.bus(), None, command, cx.meta()).await })
}

impl Registration {
    /// Registers the routing handler of the command `C`, made by [`route`].
    pub const fn routed<C>(handler: &'static CommandHandler<C>) -> Self
    where
        C: AggregateCommand + Command<Output = u64, Error = RoutedError<C>>,
    {
        Self::any(handler)
    }
}

/// The routing handler of the command `C`, named and placed as `#[derive(Command)]` with
/// `#[command(aggregate = ..)]` describes it.
#[doc(hidden)]
pub const fn route<C>(name: &'static str, location: Location) -> CommandHandler<C>
where
    C: AggregateCommand + Command<Output = u64, Error = RoutedError<C>>,
{
    let call = CommandCall::Async(route_command::<C>);
    CommandHandler::new(name, call, Routed::<C>::REQUIRES, location)
}

/// The resources of a routed command's handler.
struct Routed<C>(PhantomData<C>);

impl<C> Routed<C>
where
    C: AggregateCommand + Command<Output = u64, Error = RoutedError<C>>,
{
    /// The bus's event store and the aggregate's services, checked when the bus is built.
    const REQUIRES: &'static [Option<Requirement>] = &[
        Some(Requirement::event_store::<SharedStore>(
            <C::Aggregate as EventSourced>::TYPE,
        )),
        <<C::Aggregate as Handle<C>>::Services as Services>::REQUIRES,
    ];
}

impl Bus {
    /// Sends a command to the aggregate instance `id` (for commands without a
    /// `#[command(id)]` field, like cqrs-es's `execute(id, command)`; `id` wins over such a
    /// field). Returns the aggregate's version after the append.
    ///
    /// Fails with [`SendError::Rejected`] holding the aggregate's own error when it refused
    /// the command, [`SendError::Conflict`] when another writer appended first (see
    /// [`AggregateCommand`] for re-runs), [`SendError::Store`] when the store failed.
    pub async fn send_to<C>(&self, id: impl Into<String>, command: C) -> CommandOutcome<C>
    where
        C: AggregateCommand + Command<Output = u64, Error = RoutedError<C>>,
    {
        self.send_to_with(id, command, crate::command::command_meta::<C>())
            .await
    }

    /// Like [`send_to`](Self::send_to), with the command's metadata given.
    pub async fn send_to_with<C>(
        &self,
        id: impl Into<String>,
        command: C,
        meta: Meta,
    ) -> CommandOutcome<C>
    where
        C: AggregateCommand + Command<Output = u64, Error = RoutedError<C>>,
    {
        let id = id.into();
        let future = async { run_routed(self, Some(id), command, &meta).await };
        crate::command::run_instrumented::<C>("routed", &meta, Box::pin(future)).await
    }
}
