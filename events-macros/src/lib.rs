//! Procedural macros of the `events` crate. Use them through `events`, which re-exports them.
//!
//! Each macro reads its options (`attr`) and item into a small model (`ast`), checks the rules
//! between them (`valid`) while collecting every error (`ctxt`), then generates code
//! (`expand`) that only calls into `::events::__private`; on error it emits the errors and a
//! fallback, so uses of the item add no error of their own.
//!
//! Every option of every macro is listed on the macro's page with its meaning and an example;
//! an unknown or repeated option is a compile error spanned on it, and all of them are
//! reported in one build.
#![warn(missing_docs)]

mod attr;
mod command;
mod ctxt;
mod event;
mod event_set;
#[cfg(test)]
mod expansion_size;
mod function;
mod handler;
mod process;
mod registration;
mod view;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `events::DomainEvent` for a struct or enum: its stable name, schema version,
/// aggregate, and its own link-time handler list.
///
/// Options on the type, `#[event(..)]`, all optional:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "orders.order_placed"` | the stable name: stored with the event, shown by tools, unique in the program | the type's name |
/// | `version = 2` | the payload's schema version, stored with the event (1 or more) | `1` |
/// | `aggregate = "Customer"` | the aggregate type whose stream the event belongs to | none |
/// | `upcast = path::to::fn` | brings a stored payload of an older version to this one (below) | none: an older payload must decode as is |
///
/// On a field, `#[event(aggregate_id)]` marks the aggregate id: a string, an integer, a
/// `uuid::Uuid`, or a type implementing `events::AggregateId` (in an enum, one field per
/// variant; a variant without one has no id).
///
/// **The upcaster** is a function
/// `fn(from_version: u32, payload: serde_json::Value) -> Result<serde_json::Value, events::BoxError>`:
/// it gets the stored payload and the version it was stored with (below `version`) and
/// returns the payload of the current version. Every read path goes through it: first
/// delivery, retries, dead letters, replays, aggregates and projections. An `Err` dead-letters
/// the event with its message.
///
/// ```
/// use events::{BoxError, DomainEvent};
/// use serde::{Deserialize, Serialize};
/// use serde_json::Value;
///
/// #[derive(DomainEvent, Serialize, Deserialize)]
/// #[event(name = "orders.order_placed", version = 2, aggregate = "Customer", upcast = order_placed_v1)]
/// struct OrderPlaced {
///     #[event(aggregate_id)]
///     customer: u32,
///     items: u32,
/// }
///
/// /// Version 1 had no `items`.
/// fn order_placed_v1(from_version: u32, mut payload: Value) -> Result<Value, BoxError> {
///     assert_eq!(from_version, 1);
///     payload["items"] = 1.into();
///     Ok(payload)
/// }
///
/// assert_eq!((OrderPlaced::NAME, OrderPlaced::VERSION), ("orders.order_placed", 2));
/// assert_eq!(OrderPlaced::AGGREGATE_TYPE, Some("Customer"));
/// assert_eq!(OrderPlaced { customer: 7, items: 2 }.aggregate_id().as_deref(), Some("7"));
///
/// // An enum: one event type, an id field per variant.
/// #[derive(DomainEvent)]
/// #[event(aggregate = "Card")]
/// enum CardChanged {
///     Renamed { #[event(aggregate_id)] card: u64, name: String },
///     Retired { #[event(aggregate_id)] card: u64 },
/// }
/// assert_eq!(CardChanged::Retired { card: 3 }.aggregate_id().as_deref(), Some("3"));
/// ```
///
/// An event with durable handlers is stored, so it also derives serde's `Serialize` and
/// `Deserialize` (a compile error says so at the handler otherwise).
#[proc_macro_derive(DomainEvent, attributes(event))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    event::expand(&parse_macro_input!(input as DeriveInput)).into()
}

/// Derives `events::Command` for a struct or enum: a request sent with `bus.send(cmd)` to
/// exactly one handler (a second `#[command_handler]` for it is a compile error, and sending a
/// command that has no handler does not compile).
///
/// Options on the type, `#[command(..)]`, all optional:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "bank.deposit"` | the stable name, in logs and errors | the type's name |
/// | `output = Type` | what the handler returns on success | `()` |
/// | `error = Type` | the handler's error | `events::BoxError` |
/// | `remote_handler` | the handler lives in another crate (marked `#[command_handler(remote)]`): checked when the bus is built instead of at compile time | off |
/// | `aggregate = Type` | routed to this event-sourced aggregate (`events::Handle<Self>`): no handler to write; the bus loads, decides, appends and dispatches. `output` is then the stream's new version, the error the aggregate's own `Handle::Error` | none |
/// | `retry_on_conflict = N` | with `aggregate`: after a lost append race, run the command again on the new state, up to `N` more times | 0 |
///
/// On a field of a routed command, `#[command(id)]` marks the aggregate id (in an enum, one
/// per variant). `bus.send(cmd)` takes a routed command only when it carries the id (in an
/// enum: in every variant); otherwise send it with `bus.send_to(id, cmd)` (like cqrs-es's
/// `execute(id, cmd)`): `send` does not compile.
///
/// A routed command fails with `SendError::Rejected` holding the aggregate's own error
/// (`err.rejected()`), `SendError::Conflict` when another writer appended to the stream between
/// the load and the append (nothing was written), or `SendError::Store` when the store failed.
/// By default a conflict is returned, not retried: running the command again calls the
/// aggregate's services again (an ATM would pay out twice). With `retry_on_conflict = N` the
/// whole load, `handle` (its services included) and append run again, so the services run at
/// most `N + 1` times: opt in only when calling them again is harmless.
///
/// ```
/// use events::{command_handler, Bus, Command};
///
/// #[derive(Command)]
/// #[command(name = "bank.deposit", output = u64, error = String)]
/// struct Deposit { amount: u64 }
///
/// #[command_handler]
/// fn deposit(cmd: Deposit) -> Result<u64, String> {
///     if cmd.amount == 0 { return Err("nothing to deposit".into()) }
///     Ok(cmd.amount)
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = Bus::builder().build()?;
/// assert_eq!(bus.send(Deposit { amount: 5 }).await.unwrap(), 5);
/// assert_eq!(Deposit::NAME, "bank.deposit");
/// # Ok::<(), events::BuildError>(()) }).unwrap();
/// ```
///
/// Routed to an aggregate:
///
/// ```
/// use events::store::MemoryStore;
/// use events::{Bus, Command, DomainEvent, EventSet, EventSourced, Handle};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(DomainEvent, EventSet, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #[event(aggregate = "Account")]
/// enum AccountEvent { Deposited { amount: u64 } }
///
/// #[derive(Default)]
/// struct Account { balance: u64 }
///
/// impl EventSourced for Account {
///     const TYPE: &'static str = "Account";
///     type Event = AccountEvent;
///     fn apply(&mut self, AccountEvent::Deposited { amount }: &AccountEvent) {
///         self.balance += amount;
///     }
/// }
///
/// #[derive(Command, Clone)]
/// #[command(aggregate = Account)]
/// struct Deposit { #[command(id)] account: String, amount: u64 }
///
/// impl Handle<Deposit> for Account {
///     type Error = String;
///     type Services = ();
///     async fn handle(&self, cmd: Deposit, _: &()) -> Result<Vec<AccountEvent>, String> {
///         Ok(vec![AccountEvent::Deposited { amount: cmd.amount }])
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = Bus::builder().event_store(MemoryStore::new()).build()?;
/// let version = bus.send(Deposit { account: "a-1".into(), amount: 5 }).await.unwrap();
/// assert_eq!(version, 1);
/// # Ok::<(), events::BuildError>(()) }).unwrap();
/// ```
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    command::expand_derive(&parse_macro_input!(input as DeriveInput)).into()
}

/// Registers a function as an event handler at link time: no registration call anywhere,
/// the bus finds it when it is built.
///
/// On a free `fn` or `async fn`. The first parameter is `&E` for a `DomainEvent` `E` (a
/// durable handler may take `&[E]` instead: a batch, runs of consecutive events in one
/// call); the others are extractors: `Res<T>` (a resource given to the bus), `Meta` (the
/// event's envelope), `Publisher` (follow-up events), or any `events::FromContext`. Return
/// `()` or `Result<(), E>` with `E: Into<Box<dyn Error + Send + Sync>>`.
///
/// Options, all optional:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "orders.send_confirmation"` | the handler's stable, unique name (logs, metrics, the CLI; a durable handler's checkpoint) | `module_path::fn_name`; required with `durable` |
/// | `order = -1` | runs before handlers with a higher `order` (then by name) | `0` |
/// | `publishes(OrderShipped, InvoiceSent)` | declares the follow-up events it publishes, for the catalog and `graph` | none |
/// | `durable` | never runs inline: the event is stored and a worker delivers it, at least once | off |
/// | `max_attempts = 8` | durable only: attempts before the event becomes a dead letter (1 to 1000) | `5` |
/// | `backoff_ms = 250` | durable only: the first retry's delay, doubled each attempt, with jitter (0 to 3,600,000) | `100` |
/// | `breaker_after = 10` | durable only: fresh events failed in a row (retries do not count) that open the circuit, pausing the handler | the worker's, `5` |
/// | `breaker_cooldown_ms = 60000` | durable only: how long an open circuit pauses the handler before one fresh event probes | the worker's, `30000` |
///
/// ```
/// use events::{event_handler, Bus, DomainEvent, Meta, Publisher, Res};
///
/// #[derive(DomainEvent)]
/// struct OrderPlaced { order: u64 }
/// #[derive(DomainEvent)]
/// struct OrderShipped { order: u64 }
///
/// struct Warehouse;
///
/// #[event_handler(name = "orders.ship", order = -1, publishes(OrderShipped))]
/// fn ship(e: &OrderPlaced, _warehouse: Res<Warehouse>, publisher: Publisher) {
///     publisher.publish(OrderShipped { order: e.order });
/// }
///
/// #[event_handler(name = "orders.notify")]
/// async fn notify(e: &OrderShipped, meta: Meta) -> Result<(), std::io::Error> {
///     assert!(meta.causation_id().is_some()); // the OrderPlaced it followed
///     Ok(())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = Bus::builder().resource(Warehouse).build()?;
/// let report = bus.dispatch(&OrderPlaced { order: 1 }).await?;
/// assert!(report.is_ok(), "{report}");
/// assert_eq!(report.follow_ups()[0].ran(), 1);
/// # Ok::<(), events::BoxError>(()) }).unwrap();
/// ```
///
/// Durable handlers, one event at a time and in batches:
///
/// ```
/// use events::{event_handler, DomainEvent};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(DomainEvent, Serialize, Deserialize)]
/// #[event(aggregate = "Customer")]
/// struct OrderPlaced { #[event(aggregate_id)] customer: u32, order: u64 }
///
/// #[event_handler(durable, name = "orders.send_confirmation", max_attempts = 8, backoff_ms = 250)]
/// async fn send_confirmation(e: &OrderPlaced) -> Result<(), std::io::Error> {
///     Ok(())
/// }
///
/// #[event_handler(durable, name = "orders.index")]
/// fn index(orders: &[OrderPlaced]) {
///     println!("{} orders in one call", orders.len());
/// }
///
/// let durable: Vec<_> = events::catalog().handlers().iter().filter(|h| h.event_name() == "OrderPlaced").map(|h| h.name()).collect();
/// assert_eq!(durable, ["orders.index", "orders.send_confirmation"]);
/// ```
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    function::expand_attribute::<handler::EventHandler>(args.into(), input.into()).into()
}

/// Registers a function as the one handler of a command at link time.
///
/// On a free `fn` or `async fn` whose first parameter takes the command by value (`cmd: C`,
/// for a `#[derive(Command)]` type `C`); the others are extractors, as for
/// [`macro@event_handler`]. It returns `Result<Output, Error>` as declared by
/// `#[command(output = .., error = ..)]` on the command. A second handler for the same
/// command is a compile error.
///
/// Options, all optional:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "bank.deposit"` | the handler's name in logs and the catalog | `module_path::fn_name` |
/// | `remote` | the command is defined in another crate and marked `#[command(remote_handler)]` there; the bus checks at start-up that exactly one such handler is linked | off |
///
/// ```
/// use events::{command_handler, Bus, Command, Publisher};
///
/// #[derive(Command)]
/// #[command(output = u64, error = String)]
/// struct OpenAccount { owner: String }
///
/// #[command_handler(name = "bank.open_account")]
/// async fn open_account(cmd: OpenAccount, _publisher: Publisher) -> Result<u64, String> {
///     if cmd.owner.is_empty() { return Err("an account needs an owner".into()) }
///     Ok(42)
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = Bus::builder().build()?;
/// assert_eq!(bus.send(OpenAccount { owner: "Ada".into() }).await.unwrap(), 42);
/// let error = bus.send(OpenAccount { owner: String::new() }).await.unwrap_err();
/// assert_eq!(error.rejected(), Some(&"an account needs an owner".to_string()));
/// # Ok::<(), events::BuildError>(()) }).unwrap();
/// ```
#[proc_macro_attribute]
pub fn command_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    function::expand_attribute::<command::CommandHandler>(args.into(), input.into()).into()
}

/// Derives `events::EventSet` for an enum of an event-sourced aggregate's events (struct,
/// tuple or unit variants), each stored under its own name and version with its fields as the
/// payload. Derive `DomainEvent` beside it, so handlers may take the whole enum.
///
/// Options on a variant, `#[event_set(..)]`, all optional:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "tab.drink_ordered"` | the name the variant is stored under | the variant's name |
/// | `version = 2` | the variant's schema version | `1` |
///
/// ```
/// use events::{DomainEvent, EventSet};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(DomainEvent, EventSet, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #[event(aggregate = "Tab")]
/// enum TabEvent {
///     Opened { table: u32 },
///     #[event_set(name = "tab.drink_ordered", version = 2)]
///     DrinkOrdered { drink: String, price: u32 },
///     Paid(u32),
///     Closed,
/// }
///
/// let e = TabEvent::DrinkOrdered { drink: "tea".into(), price: 4 };
/// let stored = e.to_new_event(events::store::EventMetadata::default())?;
/// assert_eq!((stored.name.as_str(), stored.version), ("tab.drink_ordered", 2));
/// assert_eq!(stored.payload, serde_json::json!({ "drink": "tea", "price": 4 }));
/// assert_eq!(TabEvent::Closed.name(), "Closed");
/// # Ok::<(), events::store::StoreError>(())
/// ```
#[proc_macro_derive(EventSet, attributes(event_set))]
pub fn derive_event_set(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event_set::expand(&input).into()
}

/// Derives `events::sourcing::View` for a read model kept by id, and, with `durable`, registers
/// the durable handler that keeps it live: each event of an aggregate, applied once to the
/// view of that aggregate (its `AggregateView::update`), the view write committed by the
/// worker in the same transaction as the handler's checkpoint (`events::sourcing::ViewKeeper`).
///
/// Options on the type, `#[view(..)]`, all optional:
///
/// | option | meaning | default |
/// |---|---|---|
/// | `name = "bank_account"` | the view's stable name, the key of its rows | the type's name |
/// | `durable = "bank.ledger"` | registers a durable handler of this name that keeps the view; the type must implement `AggregateView` | no handler |
///
/// ```
/// use events::sourcing::{AggregateView, View, ViewRepository};
/// use events::store::SqliteStore;
/// use events::worker::Worker;
/// use events::{Bus, DomainEvent, EventSet};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(DomainEvent, EventSet, Serialize, Deserialize)]
/// #[event(aggregate = "Account")]
/// enum AccountEvent {
///     Opened { #[event(aggregate_id)] id: String },
///     Deposited { #[event(aggregate_id)] id: String, cents: i64 },
/// }
///
/// #[derive(View, Serialize, Deserialize, Default, Debug, PartialEq)]
/// #[view(name = "balance", durable = "bank.balance")]
/// struct Balance { cents: i64 }
///
/// impl AggregateView for Balance {
///     type Event = AccountEvent;
///     fn update(&mut self, event: &AccountEvent) {
///         if let AccountEvent::Deposited { cents, .. } = event {
///             self.cents += cents;
///         }
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = SqliteStore::open_in_memory()?;
/// let bus = Bus::builder().store(store.clone()).build()?;
/// bus.dispatch(&AccountEvent::Opened { id: "a-1".into() }).await.unwrap();
/// bus.dispatch(&AccountEvent::Deposited { id: "a-1".into(), cents: 250 }).await.unwrap();
/// Worker::new(&bus, &store).handlers(["bank.balance"]).drain().await?;
/// let balances = ViewRepository::<Balance>::new(&store);
/// assert_eq!(balances.load("a-1").await?, Some((Balance { cents: 250 }, 2)));
/// # Ok::<(), events::BoxError>(()) }).unwrap();
/// ```
#[proc_macro_derive(View, attributes(view))]
pub fn derive_view(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    view::expand(&input).into()
}

/// Makes the state type of an `impl` block a process manager (saga): one instance per
/// association id, whose methods react to events and send commands.
///
/// On `impl State { .. }` where `State: Default + Serialize + Deserialize`. Every method is a
/// reaction `fn(&mut self, e: &Event, ..)` (sync or async) to one event type: `#[start]`
/// starts an instance (from `Default`), `#[complete]` completes it, the others continue it.
/// After the event come extractors (`Res<T>`, `Meta`) and at most one
/// `&mut events::process::Reaction<Self>` to send commands with. Return `()` or
/// `Result<(), E>`.
///
/// | option | meaning |
/// |---|---|
/// | `name = "flows.automation"` | the stable name of its durable handler (required) |
/// | `association = run_id` | the field of every handled event that holds the instance's id |
/// | `correlation` | instead: the events' correlation id is the instance's id |
/// | `sends(CreateRecord, Notify)` | the commands it sends: each must have exactly one handler |
/// | `delete_completed` | a completed instance's state is deleted (default: kept) |
///
/// See the `events::process` module for what the worker guarantees.
#[proc_macro_attribute]
pub fn process_manager(args: TokenStream, input: TokenStream) -> TokenStream {
    process::expand(args.into(), input.into()).into()
}
