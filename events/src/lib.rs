//! A domain event bus wired by the compiler and the linker.
//!
//! Events are plain types with `#[derive(DomainEvent)]`; handlers are plain functions with
//! `#[event_handler]`. Every handler registers itself at link time, so a program starts with all
//! of its handlers in place and there is no `register()` call anywhere:
//!
//! ```
//! use events::{Bus, DomainEvent, event_handler};
//!
//! #[derive(DomainEvent, Debug)]
//! #[event(name = "library.card_added", aggregate = "Library")]
//! struct CardAdded {
//!     #[event(aggregate_id)]
//!     library_id: u64,
//!     card: String,
//! }
//!
//! #[event_handler]
//! fn update_search_index(e: &CardAdded) {
//!     println!("indexing {}", e.card);
//! }
//!
//! let bus = Bus::builder().build()?;
//! let report = bus.publish(&CardAdded { library_id: 7, card: "Black Lotus".into() })?;
//! assert!(report.is_ok());
//! assert_eq!(report.ran(), 1);
//! # Ok::<(), events::BoxError>(())
//! ```
//!
//! Dispatch is a statically typed walk over one event type's own handler list: there is no
//! `TypeId` map and no filtering of a global list. Handler failures and panics are isolated and
//! reported in a [`Report`]; they never reach the publisher.
//!
//! Handlers that live in a library crate run once the application links that crate; see
//! [`link!`].
//!
//! Aggregates and commands: a recording aggregate ([`AggregateRoot`]) hands out the events its
//! methods raised after the save, as an [`EventBatch`] that reaches each event type's own
//! handlers; an event-sourced one ([`EventSourced`], in [`sourcing`]) is rebuilt from its stream,
//! decides with its services, and is appended to with an expected version through a
//! [`Repository`] over an [`store::EventStore`]; a command marked
//! `#[command(aggregate = ..)]` is routed to it with no handler to write. Commands
//! (`#[derive(Command)]`, `#[command_handler]`) go to exactly one handler: a second one is a
//! compile error, and [`Bus::send`] of a command without a handler does not compile.
//! [`testing`] has `given(..).when(..).then(..)` and a [`Capture`](testing::Capture) of
//! published events.
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aggregate;
mod bus;
mod capture;
mod catalog;
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
mod cold;
mod command;
mod command_shim;
mod decode;
mod error;
mod event;
mod extract;
mod handler;
mod meta;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
mod outbox;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub mod process;
mod registry;
mod report;
mod shim;
mod sink;
pub mod sourcing;
#[cfg(feature = "durable")]
mod stop;
pub mod store;
pub mod testing;
mod trace;
#[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq")))
)]
pub mod transport;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub mod worker;

#[doc(hidden)]
pub mod __private;

/// The guide, a chapter per part of the crate (the files of `events/docs/`); the README is its
/// first page. Their examples are compiled and run as doc tests.
pub mod guide {
    #[doc = include_str!("../docs/bus.md")]
    pub mod bus {}
    #[doc = include_str!("../docs/aggregates.md")]
    pub mod aggregates {}
    #[doc = include_str!("../docs/durable.md")]
    pub mod durable {}
    #[doc = include_str!("../docs/process-managers.md")]
    pub mod process_managers {}
    #[doc = include_str!("../docs/cli.md")]
    pub mod cli {}
    #[doc = include_str!("../docs/scaling.md")]
    pub mod scaling {}
    #[doc = include_str!("../docs/internals.md")]
    pub mod internals {}
    #[doc = include_str!("../docs/production.md")]
    pub mod production {}
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use aggregate::{AggregateRoot, EventBatch, EventRecorder, RecordedEvent};
pub use bus::{Bus, BusBuilder, MAX_DEPTH};
pub use catalog::{catalog, Catalog, EventInfo, HandlerInfo, Location};
pub use command::{command_meta, Addressed, Command, HandledCommand, SendError, Sending};
pub use error::{BoxError, BuildError, NotPublished, Problem, PublishError};
pub use event::{AggregateId, DomainEvent};
pub use events_macros::{
    command_handler, event_handler, process_manager, Command, DomainEvent, EventSet,
};
pub use extract::{Context, FromContext, Publisher, Res};
pub use handler::HandlerKind;
pub use meta::Meta;
pub use outbox::Outbox;
pub use report::{ExtractError, Failure, FailureCause, Report};
pub use sink::{
    Due, DurableRecord, DurableSink, NewTimer, ScheduleError, TimerId, TimerTarget, TimerWrite,
};
pub use sourcing::{
    AggregateCommand, Committed, EventOf, EventSet, EventSourced, ExecuteError, Handle, Repository,
    Services,
};

/// Links a crate that holds handlers into the application.
///
/// The linker only keeps crates that the binary uses. A crate whose handlers register
/// themselves at link time but that nothing names would be dropped without a word, and its
/// handlers would never run. One line at the top of `main.rs` (or anywhere in the binary) keeps it:
///
/// ```
/// events::link!(shop_handlers); // your handler crates, comma-separated
/// # fn main() {
/// assert!(events::catalog().handlers().iter().any(|h| h.name() == "shop.record_revenue"));
/// # }
/// ```
///
/// Forgetting it is not silent: building the bus logs (info) the crates that contributed
/// handlers, and warns for each event type that has no handler at all. To make it an error,
/// require the crates or handlers you expect; `build()` then fails and names each missing one:
///
/// ```
/// events::link!(shop_handlers);
/// # fn main() -> Result<(), events::BuildError> {
/// # let revenue = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
/// let bus = events::Bus::builder()
///     .require_crates(["shop_handlers"])
///     .require_handlers(["shop.record_revenue"])
/// #   .shared_resource(revenue)
///     .build()?;
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! link {
    ($($krate:ident),+ $(,)?) => {
        $(
            #[allow(unused_extern_crates)]
            extern crate $krate as _;
        )+
    };
}
