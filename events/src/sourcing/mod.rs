//! Event sourcing, above the store: event sets, event-sourced aggregates with async command
//! handling and services, the repository (load, decide, append with optimistic-concurrency
//! retry), commands routed to their aggregate, projections and their rebuild, views persisted
//! by id.

mod aggregate;
mod projection;
mod repository;
mod route;
mod set;
mod snapshot;
mod view;

pub use aggregate::{EventSourced, Handle, Services};
/// `#[derive(View)]`: see the trait (and the macro's options in `events_macros`).
pub use events_macros::View;
pub use projection::{catch_up, rebuild, replay, Projection, RebuildError, Replayed};
pub use repository::{Committed, ExecuteError, Repository};
pub use route::{AggregateCommand, RoutedError, SharedStore};
pub use set::{EventOf, EventSet};
pub use snapshot::Snapshots;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use view::PostgresViews;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use view::SqliteViews;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub use view::ViewKeeper;
#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub use view::ViewRepository;
pub use view::{AggregateView, EventAt, View, ViewStore};
#[cfg(feature = "durable")]
pub(crate) use view::{Staged, Staging};

#[doc(hidden)]
pub use route::route;
#[doc(hidden)]
pub use set::{
    member, variant_dispatch, variant_from_json, variant_publish, variant_to_new_event, MemberFns,
    SetMember, SetVariants, Variant,
};
pub(crate) use set::{tagged, variants_of};
#[cfg(feature = "durable")]
#[doc(hidden)]
pub use view::{view_registration, KeptView, ViewHandler};
