//! A card library, DDD style: the [`Library`] aggregate records the events its methods raise;
//! the [`LibraryService`] saves it and its events in one transaction of the store's outbox, and
//! only after the commit are the events dispatched to their inline handlers (analytics,
//! notifications, search indexing), each getting its services injected; a durable handler (the
//! audit log) gets them from a worker. A handler's failure is logged and reported, never
//! failing the operation; the handlers are idempotent, so a redelivered event changes nothing.
//!
//! The store comes from a URL ([`database_url`]): SQLite by default, PostgreSQL with
//! `EVENTS_DATABASE_URL=postgres://..`; nothing else changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use events::sourcing::{View, ViewRepository};
use events::store::DurableStore;
use events::{
    event_handler, AggregateRoot, BuildError, Bus, DomainEvent, EventRecorder, PublishError,
    Report, Res,
};
use serde::{Deserialize, Serialize};

// ---- events ----------------------------------------------------------------------------

/// A card was added to a library.
#[derive(DomainEvent, Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(DomainEvent, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[event(name = "library.collection_created", aggregate = "Library")]
pub struct CollectionCreated {
    /// The library.
    #[event(aggregate_id)]
    pub library_id: u64,
    /// The collection's name.
    pub collection: String,
}

/// A card was removed from a library.
#[derive(DomainEvent, Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The library and its events could not be stored: nothing was saved or published.
    #[error("{0}")]
    NotPublished(String),
}

impl From<PublishError> for LibraryError {
    fn from(e: PublishError) -> Self {
        LibraryError::NotPublished(e.to_string())
    }
}

/// A user's card library: an aggregate root that records its events. Its state is stored as
/// a document (a [`View`] by id, with a version for optimistic concurrency); its events are
/// not part of it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Library {
    /// Its id.
    pub id: u64,
    /// Cards by id.
    pub cards: BTreeMap<u64, String>,
    /// Collection names.
    pub collections: BTreeSet<String>,
    #[serde(skip)]
    events: EventRecorderCell,
}

impl View for Library {
    const NAME: &'static str = "card_library.library";
}

/// The aggregate's recorder (a newtype, so the aggregate keeps `Debug` and `Default`).
#[derive(Debug, Default)]
struct EventRecorderCell(EventRecorder);

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

/// Where libraries are kept: one document per library in the event store's database, written
/// in the same transaction as the events (the store's outbox). Its saves can be made to fail.
#[derive(Debug)]
pub struct LibraryRepository {
    libraries: ViewRepository<Library>,
    fail_saves: AtomicBool,
}

impl LibraryRepository {
    /// A repository in `store`'s database.
    pub fn new(store: &Arc<dyn DurableStore>) -> Self {
        Self {
            libraries: ViewRepository::new(store),
            fail_saves: AtomicBool::new(false),
        }
    }

    /// Makes every save fail (or succeed again).
    pub fn fail_saves(&self, fail: bool) {
        self.fail_saves.store(fail, Ordering::SeqCst);
    }

    /// Loads a library, or a new one, with the version it was loaded at (`None`: new).
    pub async fn load(&self, id: u64) -> Result<(Library, Option<u64>), LibraryError> {
        let loaded = self.libraries.load(&id.to_string()).await;
        match loaded.map_err(|e| LibraryError::Save(e.to_string()))? {
            Some((library, version)) => Ok((library, Some(version))),
            None => Ok((Library::new(id), None)),
        }
    }

    /// Saves `library`, then hands out its events, both in `outbox`'s transaction: the save
    /// only counts if nobody saved the library since it was `loaded`.
    fn save_in(
        &self,
        outbox: &mut events::Outbox<'_>,
        library: &mut Library,
        loaded: Option<u64>,
    ) -> Result<(), LibraryError> {
        if self.fail_saves.load(Ordering::SeqCst) {
            return Err(LibraryError::Save("database unavailable".into()));
        }
        let id = library.id.to_string();
        self.libraries
            .stage(outbox, &id, library, loaded)
            .map_err(|e| LibraryError::Save(e.to_string()))?;
        outbox.publish_batch(library.take_events());
        Ok(())
    }
}

// ---- the application service -----------------------------------------------------------

/// The use cases: load, change, then save the library and its events in one transaction; the
/// inline handlers run after the commit.
#[derive(Clone, Debug)]
pub struct LibraryService {
    bus: Bus,
    store: Arc<dyn DurableStore>,
}

impl LibraryService {
    /// A service over a bus built with [`services`] on `store`.
    pub fn new(bus: Bus, store: Arc<dyn DurableStore>) -> Self {
        Self { bus, store }
    }

    fn repo(&self) -> Arc<LibraryRepository> {
        self.bus
            .resource::<LibraryRepository>()
            .expect("provided by `services`")
    }

    /// Runs `change` on library `id`, then saves it and its events together. Returns the
    /// inline handlers' reports: a failed handler never fails the operation. If the change or
    /// the save fails, nothing is stored and nothing dispatched.
    pub async fn change(
        &self,
        id: u64,
        change: impl FnOnce(&mut Library) -> Result<(), LibraryError>,
    ) -> Result<Vec<Report>, LibraryError> {
        let repo = self.repo();
        let (mut library, loaded) = repo.load(id).await?;
        change(&mut library)?;
        let ((), reports) = self
            .store
            .outbox(&self.bus, |outbox| {
                repo.save_in(outbox, &mut library, loaded)
            })
            .await?;
        tracing::info!(library = id, events = reports.len(), "saved and dispatched");
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

/// The audit trail, kept by a durable handler: a worker delivers each card added, at least
/// once (idempotent: keyed by the event id).
#[derive(Debug, Default)]
pub struct AuditLog {
    entries: Mutex<BTreeMap<uuid::Uuid, String>>,
}

impl AuditLog {
    /// Every entry, in event id order (UUID v7: the order they happened).
    pub fn entries(&self) -> Vec<String> {
        self.entries.lock().unwrap().values().cloned().collect()
    }
}

#[event_handler(durable, name = "library.audit.card_added")]
fn audit_card(e: &CardAddedToLibrary, audit: Res<AuditLog>, meta: events::Meta) {
    let entry = format!("library {}: card {} added", e.library_id, e.name);
    audit.entries.lock().unwrap().insert(meta.event_id(), entry);
}

/// The store URL: `EVENTS_DATABASE_URL`, or an SQLite database in memory.
pub fn database_url() -> String {
    std::env::var("EVENTS_DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned())
}

/// The bus on `store`, with every service the handlers need.
pub fn services(store: &Arc<dyn DurableStore>) -> Result<Bus, BuildError> {
    Bus::builder()
        .store(store.clone())
        .resource(LibraryRepository::new(store))
        .resource(Analytics::default())
        .resource(Notifications::default())
        .resource(SearchIndex::default())
        .resource(AuditLog::default())
        .build()
}
