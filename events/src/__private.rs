//! Support for generated code. Not public API: names and shapes change without notice.

pub use inventory;
pub use serde_json;

pub use crate::sourcing::{
    route_command, variant_dispatch, variant_from_json, variant_publish, variant_to_new_event,
};
pub use crate::sourcing::{MemberFns, SetMember, Variant};

pub use crate::command::{
    CommandCall, CommandEntry, CommandHandler, CommandOutcome, CommandRegistry, CommandSlot,
    FromCommandContext, IntoCommandOutcome,
};

pub use crate::catalog::Location;
pub use crate::event::AggregateId;
pub use crate::extract::{Context, FromContext, Requirement};
pub use crate::handler::{
    BoxFuture, Call, DurableBatchCall, DurableCall, Handler, Outcome, RetryPolicy,
};
pub use crate::registry::{EventEntry, EventRegistry, Slot};
pub use crate::report::FailureCause;

use crate::error::BoxError;

/// Draws one handler parameter; a failure becomes the handler's failure.
#[inline]
pub fn extract<T: FromContext>(cx: &Context<'_>) -> Result<T, FailureCause> {
    T::from_context(cx).map_err(FailureCause::Extract)
}

/// What a handler function may return: `()` or `Result<(), E>` with `E: Into<BoxError>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid event handler return type",
    label = "return `()` or `Result<(), E>` where `E: Into<Box<dyn std::error::Error + Send + Sync>>`"
)]
pub trait IntoOutcome {
    /// Converts the return value.
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for () {
    #[inline]
    fn into_outcome(self) -> Outcome {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoOutcome for Result<(), E> {
    #[inline]
    fn into_outcome(self) -> Outcome {
        self.map_err(|e| Box::new(FailureCause::Error(e.into())))
    }
}

/// The aggregate id of a field, for the derive.
#[inline]
pub fn aggregate_id<T: AggregateId + ?Sized>(value: &T) -> Option<String> {
    Some(value.to_aggregate_id())
}

/// Converts a handler's return value; the bound is checked on the user's return type.
#[inline]
pub fn into_outcome<R: IntoOutcome>(ret: R) -> Outcome {
    ret.into_outcome()
}

/// Boxes an async handler's future. The future must be `Send`, because a bus can be shared by
/// threads and `Bus::spawn` runs dispatches on a multi-threaded runtime.
#[inline]
pub fn boxed<'a, F>(future: F) -> BoxFuture<'a, Outcome>
where
    F: core::future::Future<Output = Outcome> + Send + 'a,
{
    Box::pin(future)
}

/// Decodes a stored payload into a durable handler's event type; the `DeserializeOwned` bound
/// is checked on the user's event type.
#[inline]
pub fn decode<E: serde::de::DeserializeOwned>(
    payload: &serde_json::Value,
) -> Result<E, FailureCause> {
    E::deserialize(payload).map_err(|e| FailureCause::Decode(e.to_string()))
}

/// Decodes the payloads of a batch, in order.
pub fn decode_all<E: serde::de::DeserializeOwned>(
    payloads: &[serde_json::Value],
) -> Result<Vec<E>, FailureCause> {
    payloads.iter().map(decode::<E>).collect()
}

/// Brings an older stored payload to the event's current version:
/// `(stored version, payload) -> payload`. Set with `#[event(upcast = path::to::fn)]`.
pub type Upcaster = fn(u32, serde_json::Value) -> Result<serde_json::Value, BoxError>;

/// The descriptor type of a handler of the command of slot `S`.
pub type CommandHandlerOf<S> = CommandHandler<<S as CommandSlot>::Command>;

/// The outcome type of a handler of the command of slot `S`.
pub type CommandOutcomeOf<S> = CommandOutcome<<S as CommandSlot>::Command>;

/// Draws one command handler parameter; a failure fails the command.
#[inline]
pub fn extract_for_command<T: FromCommandContext, S: CommandSlot>(
    cx: &Context<'_>,
) -> Result<T, crate::SendError<<S::Command as crate::Command>::Error>> {
    T::from_command_context(cx).map_err(crate::SendError::Extract)
}

/// Converts a command handler's return value; the bound is checked on the user's return type.
#[inline]
pub fn into_command_outcome<S: CommandSlot, R: IntoCommandOutcome<S::Command>>(
    ret: R,
) -> CommandOutcomeOf<S> {
    ret.into_command_outcome()
}

/// Boxes an async command handler's future.
#[inline]
pub fn boxed_command<'a, S: CommandSlot, F>(future: F) -> BoxFuture<'a, CommandOutcomeOf<S>>
where
    F: core::future::Future<Output = CommandOutcomeOf<S>> + Send + 'a,
{
    Box::pin(future)
}
