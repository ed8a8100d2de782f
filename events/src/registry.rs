//! The link-time mechanism: the global lists of handlers and of event types, and each event
//! type's own handler list, split from the global one once. `inventory` is used here and nowhere
//! else, so switching (for example to `linkme`) would touch this module and `__private` only.

use std::any::Any;
use std::sync::OnceLock;

use crate::catalog::{catalog, EventInfo, HandlerInfo, Location};
use crate::error::Problem;
use crate::event::{DomainEvent, Upcaster};
use crate::extract::Requirement;
use crate::handler::{BareCall, Call, Encode, Handler, SyncCall};
use crate::report::Tally;

/// Gives access to an event type's handler list; implemented by the hidden slot type that
/// `#[derive(DomainEvent)]` generates.
pub trait Slot<E: 'static>: 'static {
    /// The event type's registry.
    fn registry() -> &'static EventRegistry<E>;
}

/// One event type's handlers, gathered from the [`Registration`]s at first use and sorted once.
pub struct EventRegistry<E: 'static> {
    upcast: Option<Upcaster>,
    state: OnceLock<EventState<E>>,
    /// Set right after the state when the event's handlers allow the bare walk (never
    /// otherwise): one test tells `publish` both that the catalog is built and that the walk
    /// needs no context.
    bare: OnceLock<BareWalk<E>>,
}

/// What the bare walk of an event reads: handlers that all run inline and take the event alone.
/// The first call is also kept apart, so that an event with one handler costs one call and no
/// loop set-up (an event with no handler takes the plain walk).
pub(crate) struct BareWalk<E: 'static> {
    /// The handlers' calls, in dispatch order.
    pub(crate) calls: Box<[BareCall<E>]>,
    /// `calls[0]`, read without the slice.
    pub(crate) first: BareCall<E>,
    /// The report's tally when every handler ran and none failed.
    pub(crate) ran_all: Tally,
}

/// One event type's handlers, split once at catalog time by how they run, so dispatch walks
/// only what it calls.
pub(crate) struct EventState<E: 'static> {
    /// This event's position in the catalog.
    pub(crate) index: usize,
    /// Global index of the first handler: handler `i` of this event is `base + i`.
    pub(crate) base: usize,
    /// Every handler, in dispatch order.
    pub(crate) handlers: Box<[&'static Handler<E>]>,
    /// The sync handlers: what `publish` runs.
    pub(crate) sync: Box<[Inline<SyncCall<E>>]>,
    /// The same handlers' calls alone: the plain walk steps through them with one index (a
    /// slice of 8-byte items is read with a scaled index; the names are read only on a failure).
    pub(crate) sync_calls: Box<[SyncCall<E>]>,
    /// The sync and async handlers, in dispatch order: what `dispatch` runs.
    pub(crate) inline: Box<[Inline<&'static Handler<E>>]>,
    /// The async handlers' names: what `publish` reports as skipped.
    pub(crate) asynchronous: Box<[&'static str]>,
    /// The durable handlers' names: the event is stored for them.
    pub(crate) durable: Box<[&'static str]>,
    /// How to serialize the event for the store (from its durable handlers).
    pub(crate) encode: Option<Encode<E>>,
    /// The durable handlers of other types that read this event from the store (a process
    /// manager's input): it is stored for them as for its own durable handlers.
    stored: Box<[&'static StoredFor<E>]>,
    /// Only sync handlers: `publish` may take its plain path.
    pub(crate) plain: bool,
}

/// A handler that runs inline, with its name and global index (for logs and metrics).
pub(crate) struct Inline<C> {
    pub(crate) call: C,
    pub(crate) name: &'static str,
    pub(crate) index: usize,
}

impl<E: 'static> EventState<E> {
    /// The state, and its bare walk when every handler allows it.
    fn new(
        index: usize,
        base: usize,
        handlers: Box<[&'static Handler<E>]>,
        stored: Box<[&'static StoredFor<E>]>,
    ) -> (Self, Option<BareWalk<E>>) {
        Self::split(index, base, handlers, stored, &|_| true)
    }

    /// The same handlers, with only the sync and async ones whose global index is marked in
    /// `served` (a bus built with `serve_module`); durable handlers all stay, as the event is
    /// stored for the workers that run them.
    pub(crate) fn served(&self, served: &[bool]) -> Self {
        let (handlers, stored) = (self.handlers.clone(), self.stored.clone());
        Self::split(self.index, self.base, handlers, stored, &|i| served[i]).0
    }

    fn split(
        index: usize,
        base: usize,
        handlers: Box<[&'static Handler<E>]>,
        stored: Box<[&'static StoredFor<E>]>,
        runs_inline: &dyn Fn(usize) -> bool,
    ) -> (Self, Option<BareWalk<E>>) {
        let mut state = EventState {
            index,
            base,
            handlers: Box::default(),
            sync: Box::default(),
            sync_calls: Box::default(),
            inline: Box::default(),
            asynchronous: Box::default(),
            durable: Box::default(),
            encode: handlers
                .iter()
                .find_map(|h| h.encode)
                .or_else(|| stored.first().map(|s| s.encode)),
            plain: false,
            stored: Box::default(),
        };
        let (mut sync, mut inline, mut asynchronous, mut durable) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut bare = Vec::new();
        for (i, &h) in handlers.iter().enumerate() {
            let (name, index) = (h.name, base + i);
            match h.call {
                Call::Bare(..) | Call::Sync(_) | Call::Async(_) if !runs_inline(index) => {}
                Call::Bare(_, call) | Call::Sync(call) => {
                    sync.push(Inline { call, name, index });
                    if let Call::Bare(call, _) = h.call {
                        bare.push(call);
                    }
                    inline.push(Inline {
                        call: h,
                        name,
                        index,
                    });
                }
                Call::Async(_) => {
                    asynchronous.push(name);
                    inline.push(Inline {
                        call: h,
                        name,
                        index,
                    });
                }
                Call::Durable(_) | Call::DurableBatch(_) => durable.push(name),
            }
        }
        durable.extend(stored.iter().map(|s| s.handler));
        state.plain = asynchronous.is_empty() && durable.is_empty();
        let bare = match bare.first() {
            Some(&first) if state.plain && bare.len() == sync.len() => Some(BareWalk {
                first,
                ran_all: Tally::new(index, bare.len()),
                calls: bare.into(),
            }),
            _ => None,
        };
        state.handlers = handlers;
        state.sync_calls = sync.iter().map(|h| h.call).collect();
        state.sync = sync.into();
        state.inline = inline.into();
        state.asynchronous = asynchronous.into();
        state.durable = durable.into();
        state.stored = stored;
        (state, bare)
    }
}

impl<E: 'static> EventRegistry<E> {
    /// An empty registry; the catalog fills it once.
    pub const fn new() -> Self {
        Self {
            upcast: None,
            state: OnceLock::new(),
            bare: OnceLock::new(),
        }
    }

    /// Sets the upcaster that brings older stored payloads to the current version.
    pub const fn with_upcaster(mut self, upcast: Upcaster) -> Self {
        self.upcast = Some(upcast);
        self
    }

    /// Sorted handlers with their global indices; made by the catalog, once.
    #[inline]
    pub(crate) fn state(&self) -> &EventState<E> {
        match self.state.get() {
            Some(state) => state,
            None => self.gathered(),
        }
    }

    /// The bare walk, once the catalog is built, if the event's handlers allow it.
    #[inline]
    pub(crate) fn bare(&self) -> Option<&BareWalk<E>> {
        self.bare.get()
    }

    /// The state on the first dispatch before any bus was built: gathers the catalog.
    #[cold]
    #[inline(never)]
    fn gathered(&self) -> &EventState<E> {
        catalog();
        self.state
            .get()
            .expect("every derived event is in the catalog")
    }
}

impl<E: 'static> Default for EventRegistry<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// The type-erased face of an [`EventRegistry`], for the catalog.
pub(crate) trait ErasedRegistry: Sync {
    /// `(name, Rust type name)`: the catalog's order.
    fn sort_key(&self) -> (&'static str, &'static str);
    fn event_info(&self, first_handler: usize) -> EventInfo;
    /// Sorts this event's handlers, records their global indices, and describes them.
    fn init(&self, index: usize, base: usize) -> Vec<HandlerInfo>;
}

impl<E: DomainEvent> ErasedRegistry for EventRegistry<E> {
    fn sort_key(&self) -> (&'static str, &'static str) {
        (E::NAME, std::any::type_name::<E>())
    }

    fn event_info(&self, first_handler: usize) -> EventInfo {
        let count = self.state.get().map_or(0, |s| s.handlers.len());
        EventInfo::of::<E>(first_handler..first_handler + count, self.upcast)
    }

    fn init(&self, index: usize, base: usize) -> Vec<HandlerInfo> {
        let mut bare = None;
        let state = self.state.get_or_init(|| {
            let mut handlers: Vec<_> = registered::<Handler<E>>().collect();
            handlers.sort_by_key(|h| h.sort_key());
            let mut stored: Vec<_> = registered::<StoredFor<E>>().collect();
            stored.sort_by_key(|s| s.handler);
            let state;
            (state, bare) = EventState::new(
                index,
                base,
                handlers.into_boxed_slice(),
                stored.into_boxed_slice(),
            );
            state
        });
        if let Some(bare) = bare {
            // After the state: a bare walk that fails reads the failed handler's name there.
            let _ = self.bare.set(bare);
        }
        state
            .handlers
            .iter()
            .enumerate()
            .map(|(i, h)| HandlerInfo::of::<E>(h, state.base + i))
            .collect()
    }
}

/// A handler in the global list, submitted by `#[event_handler]` or `#[command_handler]`. Each
/// event and command type reads its own handlers from it once, when the catalog is built
/// (dispatch never walks it). The constructors are the one place generated code names the
/// handled type's trait, so a handler of a type that is not an event gets exactly one error.
pub struct Registration(&'static (dyn Any + Send + Sync));

impl Registration {
    /// Registers a handler of the event type `E`.
    pub const fn event<E: DomainEvent>(handler: &'static Handler<E>) -> Self {
        Self(handler)
    }

    /// Registers that the durable handler `stored.handler` of another type reads events of
    /// type `E` from the store (a process manager's input), so a bus stores them when published.
    pub const fn stored<E: DomainEvent>(stored: &'static StoredFor<E>) -> Self {
        Self(stored)
    }

    /// Registers a handler descriptor of any type; the typed constructors call it.
    pub(crate) const fn any(handler: &'static (dyn Any + Send + Sync)) -> Self {
        Self(handler)
    }
}

inventory::collect!(Registration);

/// An event type read from the store by a durable handler that is not its own (a process
/// manager's, registered for the set of events it handles): a bus or an outbox stores it when it
/// is published, as for its own durable handlers, and names `handler` where it reports them.
pub struct StoredFor<E: 'static> {
    handler: &'static str,
    encode: Encode<E>,
}

impl<E: 'static> StoredFor<E> {
    /// `handler` reads `E` from the store, serialized by `encode`.
    pub const fn new(handler: &'static str, encode: Encode<E>) -> Self {
        Self { handler, encode }
    }
}

/// Every registered handler descriptor of type `H` (`Handler<E>` or `CommandHandler<C>`).
pub(crate) fn registered<H: Any>() -> impl Iterator<Item = &'static H> {
    inventory::iter::<Registration>
        .into_iter()
        .filter_map(|r| r.0.downcast_ref::<H>())
}

/// An event type in the global list; `#[derive(DomainEvent)]` submits one per type.
pub struct EventEntry(pub(crate) &'static dyn ErasedRegistry);

impl EventEntry {
    /// The entry of the event type whose registry this is.
    pub const fn new<E: DomainEvent>(registry: &'static EventRegistry<E>) -> Self {
        Self(registry)
    }
}

inventory::collect!(EventEntry);

pub(crate) fn event_entries() -> impl Iterator<Item = &'static dyn ErasedRegistry> {
    inventory::iter::<EventEntry>.into_iter().map(|e| e.0)
}

/// The type-erased face of a command type's handler registry (`command::CommandRegistry`), for
/// start-up checks; defined here so the core checks commands without importing them.
pub(crate) trait ErasedCommandRegistry: Sync {
    fn name(&self) -> &'static str;
    fn type_name(&self) -> &'static str;
    /// `(name, location, requirements)` of every handler.
    fn describe(&self) -> Vec<(&'static str, Location, &'static [Option<Requirement>])>;
}

/// A command type in the global list; `#[derive(Command)]` submits one per type.
pub struct CommandEntry(pub(crate) &'static dyn ErasedCommandRegistry);

inventory::collect!(CommandEntry);

/// Start-up checks of commands: exactly one handler each, and every resource it asks for.
pub(crate) fn command_problems(
    provided: &dyn Fn(std::any::TypeId) -> bool,
    served: &dyn Fn(&str) -> bool,
) -> Vec<Problem> {
    let mut entries: Vec<_> = inventory::iter::<CommandEntry>
        .into_iter()
        .map(|e| e.0)
        .collect();
    entries.sort_by_key(|e| (e.name(), e.type_name()));
    let mut problems = Vec::new();
    for entry in entries {
        let handlers = entry.describe();
        match handlers.len() {
            0 => problems.push(Problem::MissingCommandHandler {
                command: entry.name().to_owned(),
                type_name: entry.type_name().to_owned(),
            }),
            1 => {}
            _ => problems.push(Problem::DuplicateCommandHandler {
                command: entry.name().to_owned(),
                handlers: handlers
                    .iter()
                    .map(|(name, location, _)| format!("`{name}` at {location}"))
                    .collect(),
            }),
        }
        for (name, location, requires) in handlers {
            if !served(location.module_path()) {
                continue;
            }
            for req in requires.iter().flatten() {
                if provided((req.type_id)()) {
                    continue;
                }
                if let Some(aggregate) = req.event_store_of {
                    problems.push(Problem::MissingEventStore {
                        command: entry.name().to_owned(),
                        aggregate: aggregate.to_owned(),
                    });
                } else {
                    problems.push(Problem::MissingResource {
                        handler: name.to_owned(),
                        location: location.to_string(),
                        resource: req.type_name().to_owned(),
                    });
                }
            }
        }
    }
    problems
}
