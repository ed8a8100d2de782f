//! A card library, DDD style: the [`Library`] aggregate records the events its methods raise;
//! the [`LibraryService`] saves it through the repository and only then dispatches the events
//! to their handlers (analytics, notifications, search indexing), each getting its services
//! injected. A handler's failure is logged and reported, never failing the operation; the
//! handlers are idempotent, so a redelivered event changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use events::{
    event_handler, AggregateRoot, BuildError, Bus, DomainEvent, EventRecorder, Report, Res,
};

// ---- events ----------------------------------------------------------------------------

/// A card was added to a library.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
#[event(name = "library.card_added", aggregate = "Library")]
pub struct CardAddedToLibrary {
    /// The library.
    #[event(aggregate_id)]
    pub library_id: u64,
    /// The card.
    pub card_id: u64,
    /// The card's name.
    pub name: String,
}

/// A collection was created in a library.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
#[event(name = "library.collection_created", aggregate = "Library")]
pub struct CollectionCreated {
    /// The library.
    #[event(aggregate_id)]
    pub library_id: u64,
    /// The collection's name.
    pub collection: String,
}

/// A card was removed from a library.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
#[event(name = "library.card_removed", aggregate = "Library")]
pub struct CardRemovedFromLibrary {
    /// The library.
    #[event(aggregate_id)]
    pub library_id: u64,
    /// The card.
    pub card_id: u64,
}

// ---- the aggregate ---------------------------------------------------------------------

/// Why the library refuses a change.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum LibraryError {
    /// The card is already in the library.
    #[error("card {0} is already in the library")]
    AlreadyThere(u64),
    /// The card is not in the library.
    #[error("card {0} is not in the library")]
    NotThere(u64),
    /// A collection with that name exists.
    #[error("collection `{0}` exists")]
    CollectionExists(String),
    /// Saving failed.
    #[error("saving failed: {0}")]
    Save(String),
    /// The events could not be stored for their durable handlers: nothing was published.
    #[error("{0}")]
    NotPublished(String),
}

/// A user's card library: an aggregate root that records its events.
#[derive(Debug, Default, Clone)]
pub struct Library {
    /// Its id.
    pub id: u64,
    /// Cards by id.
    pub cards: BTreeMap<u64, String>,
    /// Collection names.
    pub collections: BTreeSet<String>,
    events: EventRecorderCell,
}

/// A recorder that clones empty: a copy of an aggregate (in the repository) holds no events.
#[derive(Debug, Default)]
struct EventRecorderCell(EventRecorder);

impl Clone for EventRecorderCell {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl AggregateRoot for Library {
    fn recorder(&mut self) -> &mut EventRecorder {
        &mut self.events.0
    }
}

impl Library {
    /// A new, empty library.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            ..Self::default()
        }
    }

    /// Adds a card.
    pub fn add_card(&mut self, card_id: u64, name: &str) -> Result<(), LibraryError> {
        if self.cards.contains_key(&card_id) {
            return Err(LibraryError::AlreadyThere(card_id));
        }
        self.cards.insert(card_id, name.to_owned());
        self.events.0.record(CardAddedToLibrary {
            library_id: self.id,
            card_id,
            name: name.to_owned(),
        });
        Ok(())
    }

    /// Creates a collection.
    pub fn create_collection(&mut self, name: &str) -> Result<(), LibraryError> {
        if !self.collections.insert(name.to_owned()) {
            return Err(LibraryError::CollectionExists(name.to_owned()));
        }
        self.events.0.record(CollectionCreated {
            library_id: self.id,
            collection: name.to_owned(),
        });
        Ok(())
    }

    /// Removes a card.
    pub fn remove_card(&mut self, card_id: u64) -> Result<(), LibraryError> {
        if self.cards.remove(&card_id).is_none() {
            return Err(LibraryError::NotThere(card_id));
        }
        self.events.0.record(CardRemovedFromLibrary {
            library_id: self.id,
            card_id,
        });
        Ok(())
    }
}

// ---- persistence -----------------------------------------------------------------------

/// An in-memory repository whose saves can be made to fail.
#[derive(Debug, Default)]
pub struct LibraryRepository {
    libraries: Mutex<BTreeMap<u64, Library>>,
    fail_saves: AtomicBool,
}

impl LibraryRepository {
    /// Makes every save fail (or succeed again).
    pub fn fail_saves(&self, fail: bool) {
        self.fail_saves.store(fail, Ordering::SeqCst);
    }

    /// Loads a library, or a new one.
    pub fn load(&self, id: u64) -> Library {
        self.libraries
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or_else(|| Library::new(id))
    }

    /// Saves a library.
    pub fn save(&self, library: &Library) -> Result<(), LibraryError> {
        if self.fail_saves.load(Ordering::SeqCst) {
            return Err(LibraryError::Save("database unavailable".into()));
        }
        self.libraries
            .lock()
            .unwrap()
            .insert(library.id, library.clone());
        Ok(())
    }
}

// ---- the application service -----------------------------------------------------------

/// The use cases: load, change, save, then dispatch the recorded events.
#[derive(Clone, Debug)]
pub struct LibraryService {
    bus: Bus,
}

impl LibraryService {
    /// A service over a bus built with [`services`].
    pub fn new(bus: Bus) -> Self {
        Self { bus }
    }

    fn repo(&self) -> Arc<LibraryRepository> {
        self.bus
            .resource::<LibraryRepository>()
            .expect("provided by `services`")
    }

    /// Runs `change` on library `id`, saves it, then dispatches its events. Returns the
    /// handlers' reports: a failed handler never fails the operation. If the change or the
    /// save fails, nothing is dispatched.
    pub async fn change(
        &self,
        id: u64,
        change: impl FnOnce(&mut Library) -> Result<(), LibraryError>,
    ) -> Result<Vec<Report>, LibraryError> {
        let repo = self.repo();
        let mut library = repo.load(id);
        change(&mut library)?;
        let ((), events) = library.save_with(|l| repo.save(l))?;
        let names = events.names().join(", ");
        tracing::info!(library = id, events = names.as_str(), "saved; dispatching");
        let reports = events
            .dispatch(&self.bus)
            .await
            .map_err(|e| LibraryError::NotPublished(e.to_string()))?;
        for report in reports.iter().filter(|r| !r.is_ok()) {
            tracing::warn!(%report, "a handler failed; the operation still succeeded");
        }
        Ok(reports)
    }
}

// ---- services and handlers -------------------------------------------------------------

/// Counts things (idempotent: a card counts once however often its event is delivered).
#[derive(Debug, Default)]
pub struct Analytics {
    cards_added: Mutex<BTreeSet<(u64, u64)>>,
    collections: Mutex<BTreeSet<(u64, String)>>,
}

impl Analytics {
    /// Distinct cards ever added, over all libraries.
    pub fn cards_added(&self) -> usize {
        self.cards_added.lock().unwrap().len()
    }

    /// Distinct collections created.
    pub fn collections_created(&self) -> usize {
        self.collections.lock().unwrap().len()
    }
}

/// Sends notifications; can be made unavailable.
#[derive(Debug, Default)]
pub struct Notifications {
    sent: Mutex<Vec<String>>,
    down: AtomicBool,
}

/// The notification service is unavailable.
#[derive(Debug, thiserror::Error)]
#[error("notification service unavailable")]
pub struct Unavailable;

impl Notifications {
    /// Makes the service fail (or work again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every notification sent.
    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }

    fn send(&self, message: String) -> Result<(), Unavailable> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Unavailable);
        }
        let mut sent = self.sent.lock().unwrap();
        if !sent.contains(&message) {
            sent.push(message);
        }
        Ok(())
    }
}

/// A search index of card names (idempotent by nature: a set keyed by card).
#[derive(Debug, Default)]
pub struct SearchIndex {
    entries: Mutex<BTreeMap<(u64, u64), String>>,
}

impl SearchIndex {
    /// Names matching `query`, sorted.
    pub fn search(&self, query: &str) -> Vec<String> {
        let query = query.to_lowercase();
        let mut found: Vec<_> = self
            .entries
            .lock()
            .unwrap()
            .values()
            .filter(|n| n.to_lowercase().contains(&query))
            .cloned()
            .collect();
        found.sort();
        found
    }
}

#[event_handler(name = "library.analytics.card_added")]
fn count_card(e: &CardAddedToLibrary, analytics: Res<Analytics>) {
    analytics
        .cards_added
        .lock()
        .unwrap()
        .insert((e.library_id, e.card_id));
}

#[event_handler(name = "library.analytics.collection_created")]
fn count_collection(e: &CollectionCreated, analytics: Res<Analytics>) {
    analytics
        .collections
        .lock()
        .unwrap()
        .insert((e.library_id, e.collection.clone()));
}

#[event_handler(name = "library.notify.collection_created")]
async fn notify_collection(
    e: &CollectionCreated,
    notifications: Res<Notifications>,
) -> Result<(), Unavailable> {
    notifications.send(format!(
        "library {}: new collection `{}`",
        e.library_id, e.collection
    ))
}

#[event_handler(name = "library.search.index_card")]
fn index_card(e: &CardAddedToLibrary, index: Res<SearchIndex>) {
    tracing::debug!(card = e.card_id, "indexing");
    index
        .entries
        .lock()
        .unwrap()
        .insert((e.library_id, e.card_id), e.name.clone());
}

#[event_handler(name = "library.search.unindex_card")]
fn unindex_card(e: &CardRemovedFromLibrary, index: Res<SearchIndex>) {
    index
        .entries
        .lock()
        .unwrap()
        .remove(&(e.library_id, e.card_id));
}

/// The bus with every service the handlers need.
pub fn services() -> Result<Bus, BuildError> {
    Bus::builder()
        .resource(LibraryRepository::default())
        .resource(Analytics::default())
        .resource(Notifications::default())
        .resource(SearchIndex::default())
        .build()
}
