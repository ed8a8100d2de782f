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
//! let report = bus.publish(&CardAdded { library_id: 7, card: "Black Lotus".into() });
//! assert!(report.is_ok());
//! assert_eq!(report.ran(), 1);
//! # Ok::<(), events::BuildError>(())
//! ```
//!
//! Dispatch is a statically typed walk over one event type's own handler list: there is no
//! `TypeId` map and no filtering of a global list. Handler failures and panics are isolated and
//! reported in a [`Report`]; they never reach the publisher.
//!
//! Handlers that live in a library crate run once the application links that crate; see
//! [`link!`].
#![warn(missing_docs)]

mod bus;
mod catalog;
mod error;
mod event;
mod extract;
mod handler;
mod meta;
mod registry;
mod report;

#[doc(hidden)]
pub mod __private;

pub use bus::{Bus, BusBuilder, MAX_DEPTH};
pub use catalog::{catalog, Catalog, EventInfo, HandlerInfo, Location};
pub use error::{BoxError, BuildError, Problem};
pub use event::{AggregateId, DomainEvent};
pub use events_macros::{event_handler, DomainEvent};
pub use extract::{Context, ExtractError, FromContext, Publisher, Res};
pub use handler::HandlerKind;
pub use meta::Meta;
pub use report::{Failure, FailureCause, Report};

/// Links a crate that holds handlers into the application.
///
/// The linker only keeps crates that the binary uses. A crate whose handlers register
/// themselves at link time but that nothing names would be dropped without a word, and its
/// handlers would never run. One line at the top of `main.rs` (or anywhere in the binary) keeps it:
///
/// ```ignore
/// events::link!(billing_handlers, search_handlers);
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
