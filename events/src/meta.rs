//! Envelope metadata of an event: ids, time, causality.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use uuid::Uuid;

use crate::DomainEvent;

/// The envelope of an event being handled: its id, when it happened, and which event caused it.
///
/// Handlers ask for it as a parameter (`meta: events::Meta`). The event id is a UUID v7 (ordered
/// by time); durable handlers use it to be idempotent. Follow-up events published through a
/// [`Publisher`](crate::Publisher) carry the same correlation id and this event's id as causation id.
///
/// Free-form fields (user id, tenant, request id) given to a command with
/// [`with_field`](Meta::with_field) travel along: into every event the command causes, stored
/// or not, and into the `Meta` of their handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub(crate) event_id: Uuid,
    pub(crate) occurred_at: SystemTime,
    pub(crate) correlation_id: Uuid,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) event_name: &'static str,
    pub(crate) version: u32,
    /// Free-form fields, shared along a chain (`None`: none, without an allocation).
    pub(crate) fields: Option<Arc<BTreeMap<String, String>>>,
}

impl Meta {
    /// Fresh metadata for a new event of type `E`: a new UUID v7 id, now, and the id as its own
    /// correlation id.
    pub fn new<E: DomainEvent>() -> Self {
        let id = Uuid::now_v7();
        Self {
            event_id: id,
            occurred_at: SystemTime::now(),
            correlation_id: id,
            causation_id: None,
            event_name: E::NAME,
            version: E::VERSION,
            fields: None,
        }
    }

    /// Metadata for an event of type `E` caused by the event described by `self`.
    pub fn caused<E: DomainEvent>(&self) -> Self {
        Self {
            correlation_id: self.correlation_id,
            causation_id: Some(self.event_id),
            fields: self.fields.clone(),
            ..Self::new::<E>()
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
}

/// Metadata made on first use: a dispatch whose handlers never ask for it never pays for a
/// UUID and a clock read.
pub(crate) struct LazyMeta {
    cell: OnceLock<Meta>,
    make: fn(Option<&Meta>) -> Meta,
    cause: Option<Meta>,
}

impl LazyMeta {
    pub(crate) fn new<E: DomainEvent>(cause: Option<Meta>) -> Self {
        fn make<E: DomainEvent>(cause: Option<&Meta>) -> Meta {
            match cause {
                Some(c) => c.caused::<E>(),
                None => Meta::new::<E>(),
            }
        }
        Self {
            cell: OnceLock::new(),
            make: make::<E>,
            cause,
        }
    }

    pub(crate) fn given(meta: Meta) -> Self {
        Self {
            cell: OnceLock::from(meta),
            make: |_| unreachable!("metadata given up front"),
            cause: None,
        }
    }

    pub(crate) fn get(&self) -> &Meta {
        self.cell.get_or_init(|| (self.make)(self.cause.as_ref()))
    }
}
