//! Envelope metadata of an event: ids, time, causality, aggregate, place in the log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use uuid::Uuid;

use crate::cold::ColdCell;

/// The envelope of an event being handled: its id, when it happened, which event caused it,
/// its aggregate, and (for a stored event) its place in the log.
///
/// Handlers ask for it as a parameter (`meta: events::Meta`). The event id is a UUID v7 (ordered
/// by time); durable handlers use it, or the aggregate [`sequence`](Self::sequence), to be
/// idempotent ("skip if sequence <= last applied"). Follow-up events published through a
/// [`Publisher`](crate::Publisher) carry the same correlation id and this event's id as causation id.
///
/// Free-form fields (user id, tenant, request id) given to a command with
/// [`with_field`](Meta::with_field) travel along: into every event the command causes, stored
/// or not, and into the `Meta` of their handlers.
///
/// ```
/// use std::sync::Mutex;
/// use events::{event_handler, Bus, DomainEvent, Meta};
///
/// #[derive(DomainEvent)]
/// #[event(aggregate = "Library")]
/// struct CardAdded { #[event(aggregate_id)] library: u32 }
///
/// static SEEN: Mutex<Vec<Meta>> = Mutex::new(Vec::new());
///
/// #[event_handler]
/// fn audit(_: &CardAdded, meta: Meta) {
///     SEEN.lock().unwrap().push(meta);
/// }
///
/// let bus = Bus::builder().build()?;
/// let request = uuid::Uuid::now_v7();
/// let event = CardAdded { library: 7 };
/// // The caller's correlation id and a free-form field travel with the event.
/// let meta = Meta::of(&event).with_correlation_id(request).with_field("user", "ada");
/// let _ = bus.publish_with(&event, meta);
///
/// let seen = SEEN.lock().unwrap();
/// assert_eq!(seen[0].correlation_id(), request);
/// assert_eq!(seen[0].field("user"), Some("ada"));
/// assert_eq!((seen[0].aggregate_type(), seen[0].aggregate_id()), (Some("Library"), Some("7")));
/// assert_eq!((seen[0].causation_id(), seen[0].position()), (None, None)); // published live
/// # Ok::<(), events::BuildError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub(crate) event_id: Uuid,
    pub(crate) occurred_at: SystemTime,
    pub(crate) correlation_id: Uuid,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) event_name: &'static str,
    pub(crate) version: u32,
    pub(crate) aggregate_type: Option<Arc<str>>,
    pub(crate) aggregate_id: Option<Arc<str>>,
    pub(crate) sequence: Option<u64>,
    pub(crate) position: Option<u64>,
    /// For a stored event: the schema version it was stored with (before upcasting).
    pub(crate) stored_version: Option<u32>,
    /// Free-form fields, shared along a chain (`None`: none, without an allocation).
    pub(crate) fields: Option<Arc<BTreeMap<String, String>>>,
}

impl Meta {
    /// Fresh metadata with a new id: for commands and events alike.
    pub(crate) fn named(
        event_name: &'static str,
        version: u32,
        aggregate_type: Option<Arc<str>>,
        aggregate_id: Option<Arc<str>>,
    ) -> Self {
        let id = Uuid::now_v7();
        Self {
            event_id: id,
            occurred_at: SystemTime::now(),
            correlation_id: id,
            causation_id: None,
            event_name,
            version,
            aggregate_type,
            aggregate_id,
            sequence: None,
            position: None,
            stored_version: None,
            fields: None,
        }
    }

    /// `fresh`, with `self` as its cause.
    pub(crate) fn caused_by(&self, fresh: Meta) -> Self {
        Self {
            correlation_id: self.correlation_id,
            causation_id: Some(self.event_id),
            fields: self.fields.clone(),
            ..fresh
        }
    }

    /// Sets the correlation id (for example from an incoming request).
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = id;
        self
    }

    /// Adds a free-form field (user id, tenant, request id...): sent with a command, it is
    /// stored with every event the command causes and seen by their handlers.
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(self.fields.get_or_insert_with(Default::default))
            .insert(key.into(), value.into());
        self
    }

    /// A free-form field, if set.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.as_deref()?.get(key).map(String::as_str)
    }

    /// Every free-form field.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .flat_map(|f| f.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The event's unique id (UUID v7).
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// When the event happened.
    pub fn occurred_at(&self) -> SystemTime {
        self.occurred_at
    }

    /// The id shared by every event of one chain, starting with the first.
    pub fn correlation_id(&self) -> Uuid {
        self.correlation_id
    }

    /// The id of the event whose handler published this one, if any.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.causation_id
    }

    /// The event's stable name.
    pub fn event_name(&self) -> &'static str {
        self.event_name
    }

    /// The event's schema version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The aggregate type of the event's stream (`#[event(aggregate = "..")]`, or the stored
    /// stream's type).
    pub fn aggregate_type(&self) -> Option<&str> {
        self.aggregate_type.as_deref()
    }

    /// The aggregate id (the field marked `#[event(aggregate_id)]`, or the stored stream's id).
    pub fn aggregate_id(&self) -> Option<&str> {
        self.aggregate_id.as_deref()
    }

    /// For a stored event: its place in its aggregate's stream, from 1 without gaps. Durable
    /// handlers are idempotent with it: skip an event whose sequence is not above the last one
    /// applied for that aggregate.
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// For a stored event: its position in the whole log, from 1 without gaps. `None` for an
    /// event published live (even when the bus also stores it).
    pub fn position(&self) -> Option<u64> {
        self.position
    }
}

/// Metadata made on first use: a dispatch whose handlers never ask for it never pays for a
/// UUID and a clock read.
pub(crate) struct LazyMeta<'a> {
    cell: ColdCell<Meta>,
    make: Option<&'a (dyn Fn() -> Meta + Sync)>,
}

impl<'a> LazyMeta<'a> {
    /// Metadata that `make` creates when first asked for.
    #[inline]
    pub(crate) fn new(make: &'a (dyn Fn() -> Meta + Sync)) -> Self {
        Self {
            cell: ColdCell::new(),
            make: Some(make),
        }
    }

    pub(crate) fn given(meta: Meta) -> Self {
        Self {
            cell: ColdCell::with(meta),
            make: None,
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> &Meta {
        self.cell.get_or_init(|| match self.make {
            Some(make) => make(),
            None => unreachable!("metadata given up front"),
        })
    }
}
