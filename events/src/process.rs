//! Process managers (sagas): typed serde state per association id, started, continued and
//! completed by events, whose reactions send commands.
//!
//! `#[process_manager(..)]` on an `impl` block of the state type registers one durable handler
//! (named by the attribute) that reads every event its reactions take, in log order, and keys
//! each by the association id (a field of the event, or its correlation id). The worker keeps
//! one instance's events in order whatever aggregates they come from, holds them back behind
//! one of its failures, and runs them one at a time.
//!
//! A delivery loads the instance's state (a view row, `process:<name>`), runs the reaction, and
//! stages the new state and the commands it sent (rows of `commands:<name>`); the worker
//! commits both with the checkpoint in one transaction. It then sends the stored commands, each
//! with an id derived from the causing event (UUID v5 of the event id, the reaction and the
//! command's index), and deletes each row once sent. A crash in between sends it later, once:
//! a command whose id is already the causation id of an event in the log took effect, and is
//! not sent again (logged and counted). A command that appends no event is sent at least once.
//!
//! It reads its events from the log: appended by an event-sourced aggregate (a repository, a
//! routed command), by `append_event`, or published by a bus (`dispatch`) or an outbox, which
//! store every event a process manager handles as they store the events of durable handlers
//! (a sync `publish` of one fails with `NeedsAwait` rather than drop it).
//!
//! A reaction sees the instance as the event's aggregate in its `Meta` (`<name>/<instance>`):
//! that is what its events are ordered and held back by.
//!
//! See the README's "Process managers" section and `examples/record-flows`.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::bus::Bus;
use crate::command::{Addressed, Command, HandledCommand, SendError};
use crate::decode::from_value;
use crate::error::BoxError;
use crate::event::DomainEvent;
use crate::extract::Context;
use crate::handler::{BoxFuture, Outcome};
use crate::meta::Meta;
use crate::report::FailureCause;
use crate::sink::{Due, ScheduleError, TimerTarget, TimerWrite};
use crate::sourcing::Staging;
use crate::store::durable::DurableStore;
use crate::store::{StoreError, StoredEvent};

/// The state of a process manager: one value per association id, stored as JSON.
///
/// Implemented by `#[process_manager(..)]` on an `impl` block of the type (which must be
/// `Default`, `Serialize` and `Deserialize`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a process manager",
    note = "add `#[events::process_manager(name = \"..\", association = field)]` to an `impl {Self}` block of reactions"
)]
pub trait ProcessManager: Serialize + DeserializeOwned + Default + Send + Sync + 'static {
    /// The durable handler's name: its checkpoint, and how the CLI names it.
    const NAME: &'static str;
    /// What happens to an instance's state once a `#[complete]` reaction ran.
    const ON_COMPLETE: Completion;
    /// The view its instances' states are stored in (`process:<name>`).
    #[doc(hidden)]
    const STATE_VIEW: &'static str;
    /// The view its command outbox is stored in (`commands:<name>`).
    #[doc(hidden)]
    const OUTBOX_VIEW: &'static str;
    /// Its reactions, one per event type.
    #[doc(hidden)]
    const REACTIONS: &'static [ReactionFn<Self>];
}

/// What a completed instance leaves in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Its last state, marked completed (the default).
    Keep,
    /// Only a completed marker: the state is deleted.
    Delete,
}

/// What an event does to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Starts the instance (from `Default`) when it does not exist yet.
    Start,
    /// Continues an existing instance; for an instance that was never started the event is
    /// skipped (logged and counted).
    Continue,
    /// Completes an existing instance: events for it afterwards are skipped (logged and
    /// counted).
    Complete,
}

/// `C` is a command the process manager `M` declares in `sends(..)`.
#[diagnostic::on_unimplemented(
    message = "process manager `{M}` does not declare that it sends `{Self}`",
    label = "not in its `sends(..)`",
    note = "add `{Self}` to `sends(..)` in the `#[process_manager]` attribute of `{M}`"
)]
pub trait SentBy<M> {}

/// One reaction of a process manager, as `#[process_manager]` registers it.
#[doc(hidden)]
pub struct ReactionFn<M: 'static> {
    /// The method's name.
    pub name: &'static str,
    /// The name of the event it takes.
    pub event: &'static str,
    /// What it does to the instance.
    pub stage: Stage,
    /// The association id of a payload of its event.
    pub key: fn(&serde_json::Value, &Meta) -> Result<String, BoxError>,
    /// Decodes the payload and calls the method.
    pub call: for<'a> fn(
        &'a mut M,
        &'a serde_json::Value,
        &'a mut Reaction<M>,
        &'a Context<'a>,
    ) -> BoxFuture<'a, Outcome>,
}

/// `E` is an event the process manager `M` reacts to: only such an event can be its timeout.
#[diagnostic::on_unimplemented(
    message = "process manager `{M}` has no reaction to `{Self}`, so it cannot be its timeout",
    label = "not handled by `{M}`",
    note = "add a reaction `fn on_timeout(&mut self, e: &{Self}, ..)` to the `#[process_manager]` block of `{M}`"
)]
pub trait HandledBy<M> {}

/// A timeout a reaction scheduled or cancelled (by its key, per instance).
#[derive(Clone, Debug, PartialEq)]
pub enum TimeoutChange {
    /// Scheduled (or re-scheduled) `event` under `key`, due `due`.
    Scheduled {
        /// The timeout's key in its instance.
        key: String,
        /// When it fires.
        due: Due,
        /// The event's name.
        event: &'static str,
        /// The event, as JSON.
        payload: serde_json::Value,
    },
    /// Cancelled the timeout under `key`.
    Cancelled {
        /// The timeout's key in its instance.
        key: String,
    },
}

/// A command a reaction sent, not yet stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SentCommand {
    /// The command's name (`Command::NAME`).
    pub name: &'static str,
    /// The command, as JSON.
    pub payload: serde_json::Value,
}

/// What a reaction of the process manager `M` does besides changing its state: the commands
/// it sends. They are stored with the state and the checkpoint, and sent by the worker
/// afterwards.
pub struct Reaction<M> {
    sent: Vec<SentCommand>,
    timeouts: Vec<TimeoutChange>,
    timers: Vec<TimerWrite>,
    error: Option<String>,
    /// The timers' owner: `<process name>/<instance>`.
    owner: String,
    /// The event reacted to: the cause of the timeouts' events.
    cause: Meta,
    _manager: PhantomData<fn() -> M>,
}

impl<M: ProcessManager> Reaction<M> {
    /// Sends `command` once the reaction's state is committed. Only a command named in the
    /// process manager's `sends(..)` compiles, and each of those has exactly one handler.
    pub fn send<C: Command + Serialize + SentBy<M>>(&mut self, command: C) {
        match serde_json::to_value(&command) {
            Ok(payload) => self.sent.push(SentCommand {
                name: C::NAME,
                payload,
            }),
            Err(e) => {
                self.error.get_or_insert(format!(
                    "command `{}` could not be serialized: {e}; fix its `Serialize` impl",
                    C::NAME
                ));
            }
        }
    }

    /// Schedules `event` as this instance's timeout `key`, due `when` (a [`Duration`] from
    /// now or a [`SystemTime`]), replacing a timeout of the same key: a durable timer, stored
    /// with the state and fired through the log at its due time to the reaction to `E`.
    /// Only an event this process manager reacts to compiles.
    ///
    /// [`Duration`]: std::time::Duration
    /// [`SystemTime`]: std::time::SystemTime
    pub fn schedule<E>(&mut self, key: &str, when: impl Into<Due>, event: &E)
    where
        E: DomainEvent + Serialize + HandledBy<M>,
    {
        let due = when.into();
        let meta = self.cause.caused_by(Meta::of(event));
        let written = TimerWrite::schedule(
            due,
            event,
            &meta,
            Some(self.owner.clone()),
            Some(key.to_owned()),
        )
        .and_then(|(_, write)| {
            let payload = serde_json::to_value(event).map_err(|source| ScheduleError::Encode {
                event: E::NAME,
                source,
            })?;
            Ok((write, payload))
        });
        match written {
            Ok((write, payload)) => {
                self.timers.push(write);
                self.timeouts.push(TimeoutChange::Scheduled {
                    key: key.to_owned(),
                    due,
                    event: E::NAME,
                    payload,
                });
            }
            Err(e) => {
                self.error.get_or_insert(e.to_string());
            }
        }
    }

    /// Cancels this instance's timeout `key`, if it has not fired when the state commits.
    pub fn cancel(&mut self, key: &str) {
        self.timers.push(TimerWrite::Cancel(TimerTarget::Key {
            owner: self.owner.clone(),
            key: key.to_owned(),
        }));
        self.timeouts.push(TimeoutChange::Cancelled {
            key: key.to_owned(),
        });
    }

    /// The commands sent so far.
    pub fn sent(&self) -> &[SentCommand] {
        &self.sent
    }

    /// The timeouts scheduled and cancelled so far, in order.
    pub fn timeouts(&self) -> &[TimeoutChange] {
        &self.timeouts
    }
}

/// An instance as stored: its state (none once deleted at completion) and whether it completed.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "M: Serialize + DeserializeOwned")]
pub(crate) struct Instance<M> {
    pub(crate) completed: bool,
    pub(crate) state: Option<M>,
}

/// What a reaction made of an instance.
pub(crate) enum Applied<M> {
    /// The event was not for this instance's stage: why.
    Skipped(&'static str),
    /// The reaction ran.
    Ran {
        instance: Instance<M>,
        sent: Vec<SentCommand>,
        timeouts: Vec<TimeoutChange>,
        timers: Vec<TimerWrite>,
    },
}

/// The reaction of `M` to the event named `name`.
pub(crate) fn reaction_of<M: ProcessManager>(name: &str) -> Option<&'static ReactionFn<M>> {
    M::REACTIONS.iter().find(|r| r.event == name)
}

/// Runs `reaction` on `stored` (the instance as it is, if any): the core of both the worker's
/// delivery and the test fixture.
pub(crate) async fn apply<M: ProcessManager>(
    reaction: &ReactionFn<M>,
    instance: &str,
    stored: Option<Instance<M>>,
    payload: &serde_json::Value,
    cx: &Context<'_>,
) -> Result<Applied<M>, Box<FailureCause>> {
    let mut state = match (stored, reaction.stage) {
        (
            Some(Instance {
                completed: true, ..
            }),
            _,
        ) => return Ok(Applied::Skipped("the instance completed before")),
        (None, Stage::Continue | Stage::Complete) => {
            return Ok(Applied::Skipped("no instance was started for it"))
        }
        (Some(Instance { state, .. }), _) => state.unwrap_or_default(),
        (None, Stage::Start) => M::default(),
    };
    let mut out = Reaction::<M> {
        sent: Vec::new(),
        timeouts: Vec::new(),
        timers: Vec::new(),
        error: None,
        owner: format!("{}/{instance}", M::NAME),
        cause: cx.meta().clone(),
        _manager: PhantomData,
    };
    (reaction.call)(&mut state, payload, &mut out, cx).await?;
    if let Some(error) = out.error {
        return Err(Box::new(FailureCause::Error(error.into())));
    }
    let completed = reaction.stage == Stage::Complete;
    let state = match (completed, M::ON_COMPLETE) {
        (true, Completion::Delete) => None,
        _ => Some(state),
    };
    Ok(Applied::Ran {
        instance: Instance { completed, state },
        sent: out.sent,
        timeouts: out.timeouts,
        timers: out.timers,
    })
}

/// The id of the `index`th command a reaction sent for the event `event_id`: the same on every
/// delivery of that event, so a command sent again is recognised.
pub fn command_id(event_id: Uuid, reaction: &str, index: usize) -> Uuid {
    Uuid::new_v5(&event_id, format!("{reaction}#{index}").as_bytes())
}

/// A command of the outbox, as stored (the body of its row).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredCommand {
    /// Its id: the causation id of the events it causes.
    pub id: Uuid,
    /// The command's name.
    pub command: String,
    /// The command, as JSON.
    pub payload: serde_json::Value,
    /// The process manager that sent it.
    pub process: String,
    /// The instance (association id) that sent it.
    pub instance: String,
    /// The correlation id of the causing event, carried on.
    pub correlation_id: Uuid,
    /// The causing event's id.
    pub caused_by: Uuid,
    /// The causing event's free-form fields, carried on.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
}

/// The association id of an event payload, as its reaction reads it: `Ok(None)` when the
/// process manager has no reaction to the event's name.
pub(crate) fn key_of<M: ProcessManager>(
    name: &str,
    payload: &serde_json::Value,
    meta: &Meta,
) -> Result<Option<String>, BoxError> {
    reaction_of::<M>(name)
        .map(|r| (r.key)(payload, meta))
        .transpose()
}

/// The durable call of the process manager `M`, for its registration.
#[doc(hidden)]
pub fn process_call<'a, M: ProcessManager>(
    payload: &'a serde_json::Value,
    cx: &'a Context<'a>,
) -> BoxFuture<'a, Outcome> {
    Box::pin(deliver::<M>(payload, cx))
}

/// The durable handler of the process manager `M`: its payload is `{"<event name>": body}`
/// (its input is an event set of the events its reactions take).
pub(crate) async fn deliver<M: ProcessManager>(
    payload: &serde_json::Value,
    cx: &Context<'_>,
) -> Outcome {
    let (name, body) = untag(payload)?;
    let Some(reaction) = reaction_of::<M>(name) else {
        return Err(decode_error(format!(
            "process manager `{}` has no reaction to `{name}`",
            M::NAME
        )));
    };
    let meta = cx.meta();
    let key = (reaction.key)(body, meta).map_err(|e| decode_error(e.to_string()))?;
    let staging = Staging::current().ok_or_else(|| {
        Box::new(FailureCause::Error(
            format!("process manager `{}` runs only from a worker", M::NAME).into(),
        ))
    })?;
    let loaded = match staging.staged(M::STATE_VIEW, &key) {
        Some(staged) => Some(staged),
        None => staging
            .store()
            .load_view(M::STATE_VIEW, &key)
            .await
            .map_err(store_failure)?,
    };
    let read = loaded.as_ref().map(|(_, version)| *version);
    let stored = loaded
        .map(|(body, _)| from_value::<Instance<M>>(&body))
        .transpose()
        .map_err(|e| decode_error(format!("state of `{}` `{key}`: {e}", M::NAME)))?;
    match apply(reaction, &key, stored, body, cx).await? {
        Applied::Skipped(why) => {
            skipped(M::NAME, &key, name, why);
            Ok(())
        }
        Applied::Ran {
            instance,
            sent,
            timers,
            ..
        } => {
            for timer in timers {
                staging
                    .stage_timer(timer)
                    .map_err(|e| Box::new(FailureCause::Error(e.to_string().into())))?;
            }
            let version = read.unwrap_or(0) + 1;
            let state = serde_json::to_value(&instance).map_err(|e| {
                Box::new(FailureCause::Error(
                    format!("state of `{}` could not be serialized: {e}", M::NAME).into(),
                ))
            })?;
            staging
                .stage(M::STATE_VIEW, &key, read, state, version)
                .map_err(store_failure)?;
            for (index, command) in sent.into_iter().enumerate() {
                let row = StoredCommand {
                    id: command_id(meta.event_id(), reaction.name, index),
                    command: command.name.to_owned(),
                    payload: command.payload,
                    process: M::NAME.to_owned(),
                    instance: key.clone(),
                    correlation_id: meta.correlation_id(),
                    caused_by: meta.event_id(),
                    fields: meta.fields().map(|(k, v)| (k.into(), v.into())).collect(),
                };
                let id = outbox_id(meta.position().unwrap_or(0), reaction.name, index);
                let body = serde_json::to_value(&row).map_err(|e| decode_error(e.to_string()))?;
                staging
                    .stage(M::OUTBOX_VIEW, &id, None, body, 1)
                    .map_err(store_failure)?;
            }
            Ok(())
        }
    }
}

/// The row id of a command in the outbox: in the order the commands were sent (the causing
/// event's position, then the index).
fn outbox_id(position: u64, reaction: &str, index: usize) -> String {
    format!("{position:020}.{index:06}.{reaction}")
}

/// Logs and counts an event a process manager had nothing to do with.
pub(crate) fn skipped(process: &str, instance: &str, event: &str, why: &str) {
    tracing::warn!(
        process,
        instance,
        event,
        "process manager skipped an event: {why}"
    );
    metrics::counter!("events_process_skipped_total", "process" => process.to_owned()).increment(1);
}

fn untag(payload: &serde_json::Value) -> Result<(&str, &serde_json::Value), Box<FailureCause>> {
    match payload.as_object().filter(|o| o.len() == 1) {
        Some(object) => {
            let (name, body) = object.iter().next().expect("one entry");
            Ok((name.as_str(), body))
        }
        None => Err(decode_error(
            "a process manager's input is `{\"<event name>\": payload}`".to_owned(),
        )),
    }
}

fn decode_error(message: String) -> Box<FailureCause> {
    Box::new(FailureCause::Decode(message))
}

fn store_failure(e: StoreError) -> Box<FailureCause> {
    Box::new(FailureCause::Error(Box::new(e)))
}

/// How a stored command of the type named `command` is sent: registered for every command in a
/// `sends(..)`.
#[doc(hidden)]
pub struct CommandRoute {
    /// The command's name.
    pub command: &'static str,
    /// Decodes and sends it with the metadata given.
    pub send: for<'a> fn(&'a Bus, serde_json::Value, Meta) -> BoxFuture<'a, Result<(), Dispatch>>,
}

inventory::collect!(CommandRoute);

/// Why a stored command was not sent.
#[derive(Debug, thiserror::Error)]
pub enum Dispatch {
    /// Its handler rejected it: a decision, not sent again.
    #[error("rejected: {0}")]
    Rejected(String),
    /// It could not be sent now (a conflict, a store failure, a bad payload): tried again.
    #[error("{0}")]
    Failed(String),
}

/// The route of `C`, checked where the user names it in `sends(..)`: it must have exactly one
/// handler and be addressed by itself (as for `bus.send`), and deserialize from the outbox.
#[doc(hidden)]
pub const fn command_route<C>() -> CommandRoute
where
    C: Command + HandledCommand + Addressed + DeserializeOwned + Serialize,
{
    CommandRoute {
        command: C::NAME,
        send: send_stored::<C>,
    }
}

fn send_stored<'a, C>(
    bus: &'a Bus,
    payload: serde_json::Value,
    meta: Meta,
) -> BoxFuture<'a, Result<(), Dispatch>>
where
    C: Command + HandledCommand + Addressed + DeserializeOwned,
{
    Box::pin(async move {
        let command: C = from_value(&payload).map_err(|e| {
            Dispatch::Failed(format!("stored command `{}` does not decode: {e}", C::NAME))
        })?;
        match bus.send_with(command, meta).await {
            Ok(_) => Ok(()),
            Err(SendError::Rejected(e)) => Err(Dispatch::Rejected(e.to_string())),
            Err(e) => Err(Dispatch::Failed(e.to_string())),
        }
    })
}

/// The metadata a stored command is sent with: its derived id, and the causing event's
/// correlation, causation and fields.
pub(crate) fn stored_meta(row: &StoredCommand, route: &CommandRoute) -> Meta {
    let mut meta = Meta::named(route.command, 1, None, None);
    meta.event_id = row.id;
    meta.correlation_id = row.correlation_id;
    meta.causation_id = Some(row.caused_by);
    if !row.fields.is_empty() {
        meta.fields = Some(Arc::new(row.fields.clone()));
    }
    meta
}

/// The route of the command named `name`, if a `sends(..)` of this program names it.
pub(crate) fn route(name: &str) -> Option<&'static CommandRoute> {
    inventory::iter::<CommandRoute>
        .into_iter()
        .find(|r| r.command == name)
}

/// A process manager as the worker and the CLI see it.
#[doc(hidden)]
pub struct ProcessEntry {
    /// Its durable handler's name.
    pub name: &'static str,
    /// Its outbox view.
    pub outbox: &'static str,
    /// The names of the events it handles, with each reaction's stage and name.
    pub events: fn() -> Vec<(&'static str, Stage, &'static str)>,
    /// The names of the commands it sends.
    pub sends: &'static [&'static str],
    /// The association id of a stored event (`Ok(None)`: not one of its events).
    pub key: fn(&StoredEvent) -> Result<Option<String>, BoxError>,
}

inventory::collect!(ProcessEntry);

/// The entry of `M`; generated code submits it.
#[doc(hidden)]
pub const fn process_entry<M: ProcessManager>(sends: &'static [&'static str]) -> ProcessEntry {
    ProcessEntry {
        name: M::NAME,
        outbox: M::OUTBOX_VIEW,
        events: events_of::<M>,
        sends,
        key: stored_key::<M>,
    }
}

fn events_of<M: ProcessManager>() -> Vec<(&'static str, Stage, &'static str)> {
    M::REACTIONS
        .iter()
        .map(|r| (r.event, r.stage, r.name))
        .collect()
}

/// A command a process manager sent, recognised by its id among the causes of stored events.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommandOrigin {
    /// The process manager.
    pub process: &'static str,
    /// Its reaction that sent it.
    pub reaction: &'static str,
    /// The command's index among that reaction's commands.
    pub index: usize,
    /// The event the reaction reacted to.
    pub cause: Uuid,
}

/// The commands the process managers of this program may have sent in reaction to `events`
/// (the first 64 of each reaction), by command id: what tells, in a flow, that an event was
/// caused by a process manager's command, and by which event.
pub fn commands_sent_for<'a>(
    events: impl IntoIterator<Item = (&'a str, Uuid)>,
) -> std::collections::HashMap<Uuid, CommandOrigin> {
    let processes = processes();
    let mut sent = std::collections::HashMap::new();
    for (name, event_id) in events {
        for p in &processes {
            for (_, _, reaction) in (p.events)().into_iter().filter(|(e, ..)| *e == name) {
                for index in 0..64 {
                    let by = CommandOrigin {
                        process: p.name,
                        reaction,
                        index,
                        cause: event_id,
                    };
                    sent.insert(command_id(event_id, reaction, index), by);
                }
            }
        }
    }
    sent
}

fn stored_key<M: ProcessManager>(event: &StoredEvent) -> Result<Option<String>, BoxError> {
    let meta = event.envelope("event", event.version);
    key_of::<M>(&event.name, &event.payload, &meta)
}

/// Every process manager of this program, by name.
pub fn processes() -> Vec<&'static ProcessEntry> {
    let mut all: Vec<_> = inventory::iter::<ProcessEntry>.into_iter().collect();
    all.sort_by_key(|p| p.name);
    all
}

/// The process manager whose durable handler is named `handler`, if it is one.
pub(crate) fn process(handler: &str) -> Option<&'static ProcessEntry> {
    inventory::iter::<ProcessEntry>
        .into_iter()
        .find(|p| p.name == handler)
}

/// What [`dispatch_stored`] did: how many rows it was done with, and whether a command
/// failed (it stays, with those after it, for the caller to send again after a back-off).
pub(crate) struct Sent {
    pub(crate) done: usize,
    pub(crate) failed: bool,
}

/// Sends up to `limit` stored commands of the outbox `outbox`, in the order they were sent,
/// each once by effect. A command whose handler rejects it is logged, counted and removed;
/// one that fails otherwise stays (and stops the sending: order is kept) and is tried at a
/// later call.
pub(crate) async fn dispatch_stored(
    bus: &Bus,
    store: &Arc<dyn DurableStore>,
    outbox: &str,
    limit: usize,
) -> Result<Sent, StoreError> {
    let rows = store.list_views(outbox, limit).await?;
    let mut done = 0;
    let mut failed = false;
    for (row_id, body) in rows {
        let row: StoredCommand = match from_value(&body) {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(outbox, row = row_id, error = %e, "stored command does not decode: left in the outbox; fix or delete it");
                metrics::counter!("events_process_commands_failed_total", "outbox" => outbox.to_owned()).increment(1);
                continue;
            }
        };
        if store.caused_by(row.id).await? {
            tracing::info!(
                process = row.process,
                command = row.command,
                command_id = %row.id,
                "command already took effect (an event of the log was caused by it): not sent again"
            );
            metrics::counter!("events_process_commands_repeated_total", "process" => row.process.clone()).increment(1);
            store.delete_view(outbox, &row_id).await?;
            done += 1;
            continue;
        }
        let Some(route) = route(&row.command) else {
            tracing::error!(process = row.process, command = row.command, "stored command has no route in this program: link the crate of the process manager that sends it; left in the outbox");
            metrics::counter!("events_process_commands_failed_total", "outbox" => outbox.to_owned()).increment(1);
            continue;
        };
        match (route.send)(bus, row.payload.clone(), stored_meta(&row, route)).await {
            Ok(()) => {
                tracing::info!(process = row.process, instance = row.instance, command = row.command, command_id = %row.id, "process manager's command sent");
                metrics::counter!("events_process_commands_sent_total", "process" => row.process.clone()).increment(1);
            }
            Err(Dispatch::Rejected(reason)) => {
                tracing::error!(process = row.process, instance = row.instance, command = row.command, command_id = %row.id, reason, "process manager's command rejected by its handler: not sent again");
                metrics::counter!("events_process_commands_rejected_total", "process" => row.process.clone()).increment(1);
            }
            Err(Dispatch::Failed(error)) => {
                tracing::warn!(process = row.process, command = row.command, command_id = %row.id, error, "process manager's command failed: tried again after a back-off");
                metrics::counter!("events_process_commands_failed_total", "outbox" => outbox.to_owned()).increment(1);
                failed = true;
                break;
            }
        }
        store.delete_view(outbox, &row_id).await?;
        done += 1;
    }
    Ok(Sent { done, failed })
}
