//! The test tap of a bus: [`Capture`] records what a piece of code published. It lives in the
//! core, above the bus, which feeds it through its `Tap` seam without naming it;
//! [`testing`](crate::testing) re-exports it beside the fixtures.

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex};

use crate::bus::{BusBuilder, Tap};
use crate::event::DomainEvent;
use crate::meta::Meta;

/// Captures the events a piece of code publishes through a [`Bus`](crate::bus::Bus), in order:
/// the "clear handlers and assert raised events" of other systems.
///
/// Give it to the builder with [`BusBuilder::capture`](crate::bus::BusBuilder::capture). By default
/// handlers still run; [`without_handlers`](Capture::without_handlers) records only. Names and
/// metadata of every event are kept; the events themselves for the types asked for with
/// [`keep`](Capture::keep) (they must be `Clone`).
///
/// ```
/// use events::{Bus, DomainEvent, event_handler, testing::Capture};
///
/// #[derive(DomainEvent, Clone, Debug, PartialEq)]
/// struct CardAddedToLibrary { card: String }
///
/// #[event_handler]
/// fn never_runs_here(_: &CardAddedToLibrary) { unreachable!() }
///
/// let capture = Capture::new().without_handlers().keep::<CardAddedToLibrary>();
/// let bus = Bus::builder().capture(&capture).build().unwrap();
/// let _ = bus.publish(&CardAddedToLibrary { card: "Black Lotus".into() });
/// assert_eq!(capture.names(), ["CardAddedToLibrary"]);
/// assert_eq!(capture.events::<CardAddedToLibrary>(), [CardAddedToLibrary { card: "Black Lotus".into() }]);
/// ```
#[derive(Clone, Default)]
pub struct Capture {
    inner: Arc<CaptureInner>,
}

#[derive(Default)]
struct CaptureInner {
    mute: bool,
    keep: Vec<(TypeId, Keeper)>,
    seen: Mutex<Vec<Captured>>,
}

type Keeper = fn(&dyn Any) -> Box<dyn Any + Send>;

/// One captured event.
pub struct Captured {
    name: &'static str,
    meta: Meta,
    event: Option<Box<dyn Any + Send>>,
}

impl Captured {
    /// The event's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its envelope metadata.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The event, if its type was kept and is `E`.
    pub fn get<E: DomainEvent>(&self) -> Option<&E> {
        self.event.as_ref()?.downcast_ref()
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Capture {
    /// A capture that records every event and lets handlers run.
    pub fn new() -> Self {
        Self::default()
    }

    fn configure(self, change: impl FnOnce(&mut CaptureInner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| CaptureInner {
            mute: shared.mute,
            keep: shared.keep.clone(),
            seen: Mutex::new(Vec::new()),
        });
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Handlers do not run: events are only recorded.
    pub fn without_handlers(self) -> Self {
        self.configure(|c| c.mute = true)
    }

    /// Keeps a clone of every event of type `E`, for [`events`](Capture::events).
    pub fn keep<E: DomainEvent + Clone>(self) -> Self {
        fn keeper<E: DomainEvent + Clone>(event: &dyn Any) -> Box<dyn Any + Send> {
            Box::new(event.downcast_ref::<E>().expect("kept by type id").clone())
        }
        self.configure(|c| c.keep.push((TypeId::of::<E>(), keeper::<E>)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Captured>> {
        self.inner.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The names of the events published so far, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.lock().iter().map(|c| c.name).collect()
    }

    /// The kept events of type `E` published so far, in order.
    pub fn events<E: DomainEvent + Clone>(&self) -> Vec<E> {
        self.lock()
            .iter()
            .filter_map(|c| c.get::<E>().cloned())
            .collect()
    }

    /// Takes every captured event, leaving the capture empty.
    pub fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.lock())
    }

    /// Forgets what was captured.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

impl Tap for Capture {
    /// Records an event; `true` when handlers must not run.
    fn observe(&self, name: &'static str, event: &dyn Any, meta: &Meta) -> bool {
        let id = Any::type_id(event);
        let kept = self
            .inner
            .keep
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, keep)| keep(event));
        self.lock().push(Captured {
            name,
            meta: meta.clone(),
            event: kept,
        });
        self.inner.mute
    }
}

impl BusBuilder {
    /// Records every event this bus publishes into `capture` (for tests).
    pub fn capture(mut self, capture: &Capture) -> Self {
        self.tap = Some(Arc::new(capture.clone()));
        self
    }
}
