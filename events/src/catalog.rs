//! The catalog: every event type and handler linked into the program, for start-up checks,
//! the CLI, logs and diagrams.

use std::ops::Range;
use std::sync::OnceLock;

use crate::error::BoxError;
use crate::event::{DomainEvent, Upcaster};
use crate::extract::Requirement;
use crate::handler::{Call, DurableBatchCall, DurableCall, Handler, HandlerKind, RetryPolicy};
use crate::registry::event_entries;
use crate::report::name_events;

/// Where a handler is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub(crate) file: &'static str,
    pub(crate) line: u32,
    pub(crate) module_path: &'static str,
}

impl Location {
    /// A location; generated code passes `file!()`, `line!()`, `module_path!()`.
    pub const fn new(file: &'static str, line: u32, module_path: &'static str) -> Self {
        Self {
            file,
            line,
            module_path,
        }
    }

    /// Source file, relative to the crate's workspace.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// Line of the handler function's name.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// Module the handler is defined in.
    pub fn module_path(&self) -> &'static str {
        self.module_path
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// How the worker calls a durable handler: one event at a time, or a batch (read by the
/// worker only: without the `durable` feature nothing calls it).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "durable"), allow(dead_code))]
pub(crate) enum DurableShim {
    One(DurableCall),
    Batch(DurableBatchCall),
}

impl std::fmt::Debug for DurableShim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DurableShim::One(_) => "One",
            DurableShim::Batch(_) => "Batch",
        })
    }
}

/// Every event type and handler of the program, gathered once from the link-time registry.
#[derive(Debug)]
pub struct Catalog {
    events: Vec<EventInfo>,
    handlers: Vec<HandlerInfo>,
}

/// The program's catalog. The first call walks the link-time registry and sorts each event's
/// handlers (by `order`, then by name); later calls return the same catalog.
///
/// ```
/// # use events::{DomainEvent, event_handler};
/// #[derive(DomainEvent)]
/// struct Ping;
///
/// #[event_handler(name = "pong")]
/// fn pong(_: &Ping) {}
///
/// let h = events::catalog().handlers().iter().find(|h| h.name() == "pong").unwrap();
/// assert_eq!(h.event_name(), "Ping");
/// assert_eq!(h.kind(), events::HandlerKind::Sync);
/// ```
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(Catalog::gather)
}

impl Catalog {
    fn gather() -> Self {
        let mut entries: Vec<_> = event_entries().collect();
        // A stable order: by name, then by Rust type name for (invalid) duplicate names.
        entries.sort_by_key(|e| e.sort_key());

        let mut handlers = Vec::new();
        let mut events = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let base = handlers.len();
            handlers.extend(entry.init(index, base));
            events.push(entry.event_info(base));
        }
        name_events(events.iter().map(|e| e.name).collect());
        Catalog { events, handlers }
    }

    /// Every event type, sorted by name.
    pub fn events(&self) -> &[EventInfo] {
        &self.events
    }

    /// Every handler, grouped by event (in the order of [`events`](Self::events)), each event's
    /// handlers in dispatch order.
    pub fn handlers(&self) -> &[HandlerInfo] {
        &self.handlers
    }

    /// The handlers of one event, in dispatch order.
    pub fn handlers_of(&self, event: &EventInfo) -> &[HandlerInfo] {
        &self.handlers[event.handlers.clone()]
    }

    /// The event type with this name.
    pub fn event(&self, name: &str) -> Option<&EventInfo> {
        // Sorted by name: the worker and every store read look events up here.
        let i = self.events.partition_point(|e| e.name < name);
        self.events.get(i).filter(|e| e.name == name)
    }

    /// The handler with this name.
    pub fn handler(&self, name: &str) -> Option<&HandlerInfo> {
        self.handlers.iter().find(|h| h.name == name)
    }
}

/// An event type in the catalog.
#[derive(Clone, Debug)]
pub struct EventInfo {
    name: &'static str,
    version: u32,
    aggregate_type: Option<&'static str>,
    type_name: &'static str,
    handlers: Range<usize>,
    pub(crate) upcast: Option<Upcaster>,
}

impl EventInfo {
    pub(crate) fn of<E: DomainEvent>(handlers: Range<usize>, upcast: Option<Upcaster>) -> Self {
        Self {
            name: E::NAME,
            version: E::VERSION,
            aggregate_type: E::AGGREGATE_TYPE,
            type_name: std::any::type_name::<E>(),
            handlers,
            upcast,
        }
    }

    /// The event's stable name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its schema version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The aggregate type it belongs to, if declared.
    pub fn aggregate_type(&self) -> Option<&'static str> {
        self.aggregate_type
    }

    /// Brings a stored payload of schema `version` up to the current version, through the
    /// event's upcaster (`#[event(version = 2, upcast = path::to::fn)]`). Every read path of
    /// durable delivery (first delivery, retries, replays) goes through here.
    pub fn upcast(
        &self,
        version: u32,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, BoxError> {
        match self.upcast {
            _ if version == self.version => Ok(payload),
            Some(upcast) if version < self.version => upcast(version, payload),
            _ => Err(format!(
                "`{}` is stored with schema version {version}, and this program knows version {}{}",
                self.name,
                self.version,
                if version < self.version {
                    " but has no upcaster (`#[event(upcast = ..)]`)"
                } else {
                    ""
                }
            )
            .into()),
        }
    }

    /// The Rust type's full path.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

/// A handler in the catalog.
#[derive(Clone, Debug)]
pub struct HandlerInfo {
    name: &'static str,
    event_name: &'static str,
    kind: HandlerKind,
    order: i32,
    location: Location,
    requires: Vec<Requirement>,
    publishes: &'static [&'static str],
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) index: usize,
    pub(crate) durable: Option<(DurableShim, RetryPolicy)>,
}

impl HandlerInfo {
    pub(crate) fn of<E: DomainEvent>(h: &Handler<E>, index: usize) -> Self {
        Self {
            name: h.name,
            event_name: E::NAME,
            kind: h.kind(),
            order: h.order,
            location: h.location,
            requires: h.requires.iter().flatten().copied().collect(),
            publishes: h.publishes,
            index,
            durable: match h.call {
                Call::Durable(call) => Some((DurableShim::One(call), h.retry)),
                Call::DurableBatch(call) => Some((DurableShim::Batch(call), h.retry)),
                _ => None,
            },
        }
    }

    /// Whether it is a durable batch handler (`fn h(events: &[E])`).
    pub fn is_batch(&self) -> bool {
        matches!(self.durable, Some((DurableShim::Batch(_), _)))
    }

    /// The retry policy, for a durable handler.
    pub fn retry_policy(&self) -> Option<RetryPolicy> {
        self.durable.map(|(_, retry)| retry)
    }

    /// The handler's unique name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The name of the event it handles.
    pub fn event_name(&self) -> &'static str {
        self.event_name
    }

    /// Sync or async.
    pub fn kind(&self) -> HandlerKind {
        self.kind
    }

    /// Its `order` option (default 0).
    pub fn order(&self) -> i32 {
        self.order
    }

    /// Where it is defined.
    pub fn location(&self) -> Location {
        self.location
    }

    /// Type names of the resources it needs.
    pub fn resources(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.requires.iter().map(Requirement::type_name)
    }

    pub(crate) fn requirements(&self) -> &[Requirement] {
        &self.requires
    }

    /// Names of the events it declares it publishes (`#[event_handler(publishes(..))]`).
    pub fn publishes(&self) -> &'static [&'static str] {
        self.publishes
    }
}

impl std::fmt::Debug for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.type_name())
    }
}
