//! Event sets: the enum of one event-sourced aggregate's events, stored and dispatched per
//! variant. Two ways to make one:
//!
//! - [`event_set!`](crate::event_set): one variant per event type (`Deposited(MoneyDeposited)`),
//!   each stored under its type's name and dispatched to its type's handlers.
//! - `#[derive(EventSet)]` on an enum with struct variants (the cqrs-es style): each variant is
//!   stored under its own name (`#[event_set(name = "..")]`, default: the variant's name) and
//!   version (`#[event_set(version = N)]`, default 1), with its fields as the payload. The enum
//!   also derives `DomainEvent`, and dispatching a variant reaches the enum's own handlers (a
//!   handler taking `&AccountEvent` sees every event of the aggregate).

use std::time::SystemTime;

use uuid::Uuid;

use crate::bus::Bus;
use crate::catalog::catalog;
use crate::decode::{from_value, hint};
use crate::event::DomainEvent;
use crate::handler::BoxFuture;
use crate::report::Report;
use crate::store::{EventMetadata, NewEvent, StoreError, StoredEvent};

/// The events of one event-sourced aggregate: an enum made by [`event_set!`](crate::event_set),
/// one variant per event type. Stored and dispatched as the variant's own event type.
pub trait EventSet: Send + Sync + Sized + 'static {
    /// The variant's event name.
    fn name(&self) -> &'static str;
    /// Serializes the variant as a new event of the store.
    fn to_new_event(&self, metadata: EventMetadata) -> Result<NewEvent, StoreError>;
    /// Decodes a stored payload; `Ok(None)` when `name` is not one of the set's events.
    fn from_json(name: &str, payload: serde_json::Value)
        -> Result<Option<Self>, serde_json::Error>;
    /// Runs the variant's sync handlers, with `meta`.
    fn publish_with(&self, bus: &Bus, stored: &StoredEvent) -> Report;
    /// Runs all of the variant's handlers, with the stored event's metadata.
    fn dispatch_stored<'a>(
        &'a self,
        bus: &'a Bus,
        stored: &'a StoredEvent,
    ) -> BoxFuture<'a, Report>;
}

/// `E` is one of the events of the set `S`: an aggregate whose events are `S` can raise `E`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not one of the events of `{S}`",
    label = "the aggregate cannot raise or apply `{Self}`",
    note = "add a variant holding `{Self}` to the `events::event_set!` that defines `{S}`, and handle it in `apply`"
)]
pub trait EventOf<S: EventSet>: SetMember + Into<S> {}

/// What [`event_set!`](crate::event_set) needs of each event type: a [`DomainEvent`] that serde
/// can serialize and deserialize. Checked once, on the `EventOf` impl of each variant (generated
/// code reads the operations through [`member`], bounded on `EventOf`, which holds by that
/// impl): a type that misses any of these traits gets one error, not one per trait or use.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an event of an `event_set!`",
    label = "must derive `DomainEvent`, `Serialize` and `Deserialize`",
    note = "events of an event-sourced aggregate are stored as JSON: add `#[derive(events::DomainEvent, serde::Serialize, serde::Deserialize)]` to `{Self}`"
)]
pub trait SetMember: DomainEvent + Sized {
    const FNS: MemberFns<Self>;
}

/// The operations of event type `E` of the set `S`; what generated code calls.
#[doc(hidden)]
pub const fn member<S: EventSet, E: EventOf<S>>() -> MemberFns<E> {
    E::FNS
}

/// The operations an event set performs on one of its event types.
#[doc(hidden)]
pub struct MemberFns<E> {
    pub name: &'static str,
    pub to_new_event: fn(&E, EventMetadata) -> Result<NewEvent, StoreError>,
    pub from_json: fn(serde_json::Value) -> Result<E, serde_json::Error>,
    pub publish: fn(&E, &Bus, &StoredEvent) -> Report,
    pub dispatch: for<'a> fn(&'a E, &'a Bus, &'a StoredEvent) -> BoxFuture<'a, Report>,
}

// Not recommended: a type missing a trait gets `SetMember`'s one message, not one per trait.
#[diagnostic::do_not_recommend]
impl<E: DomainEvent + serde::Serialize + serde::de::DeserializeOwned> SetMember for E {
    const FNS: MemberFns<E> = MemberFns {
        name: E::NAME,
        to_new_event: NewEvent::new::<E>,
        from_json: |value| from_value::<E>(&value),
        publish: publish_stored::<E>,
        dispatch: dispatch_stored::<E>,
    };
}

fn publish_stored<E: DomainEvent>(event: &E, bus: &Bus, stored: &StoredEvent) -> Report {
    bus.publish_stored(event, stored.envelope(E::NAME, E::VERSION))
}

fn dispatch_stored<'a, E: DomainEvent>(
    event: &'a E,
    bus: &'a Bus,
    stored: &'a StoredEvent,
) -> BoxFuture<'a, Report> {
    Box::pin(bus.dispatch_stored(event, stored.envelope(E::NAME, E::VERSION)))
}

/// Defines the enum of an event-sourced aggregate's events, one variant per event type.
///
/// Each type must derive `DomainEvent`, `serde::Serialize` and `serde::Deserialize`. The macro
/// adds `From<Event>` for every variant and implements [`EventSet`] and [`EventOf`], so
/// raising an event that is not in the set does not compile.
///
/// ```
/// # use serde::{Serialize, Deserialize};
/// # #[derive(events::DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// # struct AccountOpened { owner: String }
/// # #[derive(events::DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// # struct MoneyDeposited { amount: u64 }
/// events::event_set! {
///     #[derive(Debug, Clone, PartialEq)]
///     pub enum AccountEvent {
///         Opened(AccountOpened),
///         Deposited(MoneyDeposited),
///     }
/// }
/// let e: AccountEvent = MoneyDeposited { amount: 5 }.into();
/// assert_eq!(events::EventSet::name(&e), "MoneyDeposited");
/// ```
#[macro_export]
macro_rules! event_set {
    (
        $(#[$attr:meta])*
        $vis:vis enum $set:ident {
            $( $(#[$vattr:meta])* $variant:ident($event:ty) ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis enum $set {
            $( $(#[$vattr])* #[allow(missing_docs)] $variant($event), )+
        }

        $(
            impl ::core::convert::From<$event> for $set {
                #[inline]
                fn from(event: $event) -> Self {
                    $set::$variant(event)
                }
            }

            impl $crate::EventOf<$set> for $event {}
        )+

        impl $crate::EventSet for $set {
            fn name(&self) -> &'static str {
                match self {
                    $( $set::$variant(_) => $crate::__private::member::<$set, $event>().name, )+
                }
            }

            fn to_new_event(
                &self,
                metadata: $crate::store::EventMetadata,
            ) -> ::core::result::Result<$crate::store::NewEvent, $crate::store::StoreError> {
                match self {
                    $( $set::$variant(event) => ($crate::__private::member::<$set, $event>().to_new_event)(event, metadata), )+
                }
            }

            fn from_json(
                name: &str,
                payload: $crate::__private::serde_json::Value,
            ) -> ::core::result::Result<::core::option::Option<Self>, $crate::__private::serde_json::Error> {
                $(
                    if name == $crate::__private::member::<$set, $event>().name {
                        return ($crate::__private::member::<$set, $event>().from_json)(payload)
                            .map(|event| ::core::option::Option::Some($set::$variant(event)));
                    }
                )+
                ::core::result::Result::Ok(::core::option::Option::None)
            }

            fn publish_with(
                &self,
                bus: &$crate::Bus,
                stored: &$crate::store::StoredEvent,
            ) -> $crate::Report {
                match self {
                    $( $set::$variant(event) => ($crate::__private::member::<$set, $event>().publish)(event, bus, stored), )+
                }
            }

            fn dispatch_stored<'a>(
                &'a self,
                bus: &'a $crate::Bus,
                stored: &'a $crate::store::StoredEvent,
            ) -> $crate::__private::BoxFuture<'a, $crate::Report> {
                match self {
                    $( $set::$variant(event) => ($crate::__private::member::<$set, $event>().dispatch)(event, bus, stored), )+
                }
            }
        }
    };
}

impl StoredEvent {
    /// Decodes the payload as one of the events of `S`; `Ok(None)` when the name is not one of
    /// them. The payload is upcast first, as on every read path.
    pub fn decode<S: EventSet>(&self) -> Result<Option<S>, StoreError> {
        S::from_json(&self.name, self.current_payload()?).map_err(|e| {
            let current = catalog()
                .event(&self.name)
                .map_or(self.version, |i| i.version());
            StoreError::Decode {
                position: self.position,
                name: self.name.clone(),
                source: serde::de::Error::custom(format_args!(
                    "{e}; {}",
                    hint(Some(self.version), current)
                )),
            }
        })
    }
}

/// One variant of a derived event set: the name and version it is stored under, and the tag
/// serde writes for it.
#[doc(hidden)]
pub struct Variant {
    pub name: &'static str,
    pub version: u32,
    pub tag: &'static str,
}

/// A derived set's variants, registered by `#[derive(EventSet)]` under the enum's event name:
/// a durable handler of the enum reads the stored events of every variant (see
/// [`variants_of`]).
#[doc(hidden)]
pub struct SetVariants {
    pub set: &'static str,
    pub variants: &'static [Variant],
}

inventory::collect!(SetVariants);

/// The variants of the derived event set whose enum is the event named `set`, if it is one.
#[cfg(feature = "durable")]
pub(crate) fn variants_of(set: &str) -> Option<&'static [Variant]> {
    inventory::iter::<SetVariants>
        .into_iter()
        .find(|s| s.set == set)
        .map(|s| s.variants)
}

/// The stored payload of a set's variant as serde reads the enum: `{"Tag": fields}`.
pub(crate) fn tagged(variant: &Variant, payload: serde_json::Value) -> serde_json::Value {
    let mut tagged = serde_json::Map::new();
    tagged.insert(variant.tag.to_owned(), payload);
    serde_json::Value::Object(tagged)
}

/// Stores one variant of a derived set: serde writes `{"Tag": fields}`, the fields are the
/// payload and the variant's name the event's name.
#[doc(hidden)]
pub fn variant_to_new_event<S: serde::Serialize>(
    set: &S,
    variant: &Variant,
    metadata: EventMetadata,
) -> Result<NewEvent, StoreError> {
    let encode = |source| StoreError::Encode {
        name: variant.name.to_owned(),
        source,
    };
    let payload = match serde_json::to_value(set).map_err(encode)? {
        serde_json::Value::Object(mut map) if map.len() == 1 => map.remove(variant.tag),
        serde_json::Value::String(tag) if tag == variant.tag => Some(serde_json::Value::Null),
        _ => None,
    };
    let payload = payload.ok_or_else(|| {
        encode(serde::ser::Error::custom(format!(
            "an event set keeps serde's default enum form `{{\"{}\": ..}}`: remove `#[serde(tag, untagged, rename..)]` from the enum",
            variant.tag
        )))
    })?;
    Ok(NewEvent {
        event_id: Uuid::now_v7(),
        name: variant.name.to_owned(),
        version: variant.version,
        payload,
        metadata,
        occurred_at: SystemTime::now(),
    })
}

/// Decodes a stored variant of a derived set; `Ok(None)` when `name` is not one of its
/// variants.
#[doc(hidden)]
pub fn variant_from_json<S: serde::de::DeserializeOwned>(
    variants: &[Variant],
    name: &str,
    payload: serde_json::Value,
) -> Result<Option<S>, serde_json::Error> {
    let Some(variant) = variants.iter().find(|v| v.name == name) else {
        return Ok(None);
    };
    from_value(&tagged(variant, payload)).map(Some)
}

/// Runs the sync handlers of a derived set's enum, with the variant's stored metadata.
#[doc(hidden)]
pub fn variant_publish<S: DomainEvent>(
    set: &S,
    variant: &Variant,
    bus: &Bus,
    stored: &StoredEvent,
) -> Report {
    bus.publish_stored(set, stored.envelope(variant.name, variant.version))
}

/// Runs all handlers of a derived set's enum, with the variant's stored metadata.
#[doc(hidden)]
pub fn variant_dispatch<'a, S: DomainEvent>(
    set: &'a S,
    variant: &Variant,
    bus: &'a Bus,
    stored: &'a StoredEvent,
) -> BoxFuture<'a, Report> {
    Box::pin(bus.dispatch_stored(set, stored.envelope(variant.name, variant.version)))
}
