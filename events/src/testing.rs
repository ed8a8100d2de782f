//! Test fixtures that need no database: [`given`]`(events).with(services).when(command)
//! .then(expected)` for event-sourced aggregates (with mocked services), and [`Capture`] of the
//! events a piece of code published. For recording aggregates, assert on
//! [`take_events`](crate::AggregateRoot::take_events) (see [`EventBatch`](crate::EventBatch)).

mod fixture;
#[cfg(feature = "durable")]
mod process;

pub use crate::capture::{Capture, Captured};
pub use fixture::{given, given_no_events, Given, When};
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub use process::{process, Process, Then};
