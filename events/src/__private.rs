//! Support for generated code. Not public API: names and shapes change without notice.

pub use crate::__aggregate_id_field as aggregate_id_field;
pub use inventory;
pub use serde_json;

pub use crate::sourcing::{member, MemberFns, SetMember, SetVariants, Variant};
pub use crate::sourcing::{
    route, variant_dispatch, variant_from_json, variant_publish, variant_to_new_event,
};

pub use crate::command::{
    CommandCall, CommandHandler, CommandOutcome, CommandRegistry, CommandSlot, FromCommandContext,
    IntoCommandOutcome,
};
pub use crate::command_shim::{boxed_command, extract_for_command, CommandFn, FnCall, FnInfo};

pub use crate::catalog::Location;
pub use crate::event::{AggregateId, Upcaster};
pub use crate::extract::{Context, FromContext, Requirement};
pub use crate::handler::{
    AsyncCall, BareCall, BoxFuture, Call, DurableBatchCall, DurableCall, FutureSlot, Handler,
    Outcome, RetryPolicy,
};
#[cfg(feature = "durable")]
pub use crate::process::{
    command_route, process_call, process_entry, CommandRoute, ProcessEntry, ReactionFn,
};
pub use crate::registry::{CommandEntry, EventEntry, EventRegistry, Registration, Slot, StoredFor};
pub use crate::report::FailureCause;
pub use crate::shim::{
    aggregate_id, boxed, decode, decode_all, encode, extract, into_outcome, into_outcome_local,
    start, Durable, IntoOutcome,
};
#[cfg(feature = "durable")]
pub use crate::sourcing::{view_registration, KeptView, ViewHandler};
