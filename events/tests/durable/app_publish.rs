#![cfg(all(feature = "sqlite", feature = "postgres"))]
//! The application's publishing paths, written once against the handle `store::connect(url)`
//! returns and run unchanged on SQLite and on a real PostgreSQL (issue 21): a store-backed
//! dispatch, a store that fails, the outbox's commit and rollback with sync and async inline
//! handlers, an aggregate's recorded batch in the outbox, and the sync `publish` that cannot
//! store. Each scenario uses its own aggregate ids, so they share one store per backend.

use crate::pg as postgres;

use std::sync::{Arc, Mutex};

use events::store::{DurableStore, LogQuery};
use events::worker::Worker;
use events::{
    event_handler, AggregateRoot, BoxError, Bus, DomainEvent, EventRecorder, Meta, NotPublished,
};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "app.card_added", aggregate = "Library")]
struct CardAdded {
    #[event(aggregate_id)]
    library: String,
    card: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "app.collection_created", aggregate = "Library")]
struct CollectionCreated {
    #[event(aggregate_id)]
    library: String,
    name: String,
}

/// An event whose payload cannot be serialized: its store append fails on every backend.
#[derive(DomainEvent, Deserialize, Debug, Clone)]
#[event(name = "app.unserializable", aggregate = "Library")]
struct Unserializable {
    #[event(aggregate_id)]
    library: String,
}

impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this payload refuses to serialize",
        ))
    }
}

/// (handler, library, event id, position) of every call.
type Calls = Vec<(&'static str, String, uuid::Uuid, Option<u64>)>;
static CALLS: Mutex<Calls> = Mutex::new(Vec::new());

fn note(handler: &'static str, library: &str, meta: &Meta) {
    let call = (
        handler,
        library.to_owned(),
        meta.event_id(),
        meta.position(),
    );
    CALLS.lock().unwrap().push(call);
}

/// The calls made for `library`'s events, in order.
fn calls(library: &str) -> Calls {
    let calls = CALLS.lock().unwrap();
    calls.iter().filter(|c| c.1 == library).cloned().collect()
}

fn handlers(library: &str) -> Vec<&'static str> {
    calls(library).into_iter().map(|c| c.0).collect()
}

#[event_handler(name = "app.count_card")]
fn count_card(e: &CardAdded, meta: Meta) {
    note("sync", &e.library, &meta);
}

#[event_handler(name = "app.notify_owner")]
async fn notify_owner(e: &CardAdded, meta: Meta) {
    tokio::task::yield_now().await;
    note("async", &e.library, &meta);
}

#[event_handler(durable, name = "app.index_card")]
fn index_card(e: &CardAdded, meta: Meta) {
    note("durable", &e.library, &meta);
}

#[event_handler(name = "app.collection_inline")]
async fn collection_inline(e: &CollectionCreated, meta: Meta) {
    note("collection", &e.library, &meta);
}

#[event_handler(durable, name = "app.collection_durable")]
fn collection_durable(_: &CollectionCreated) {}

#[event_handler(durable, name = "app.unserializable")]
fn unserializable(_: &Unserializable) {}

#[derive(Default)]
struct Library {
    id: String,
    events: EventRecorder,
}

impl AggregateRoot for Library {
    fn recorder(&mut self) -> &mut EventRecorder {
        &mut self.events
    }
}

impl Library {
    fn create(id: &str) -> Self {
        let mut library = Library {
            id: id.to_owned(),
            ..Library::default()
        };
        let name = "Modern".to_owned();
        let library_id = library.id.clone();
        library.events.record(CollectionCreated {
            library: library_id,
            name,
        });
        library
    }

    fn add(&mut self, card: &str) {
        let library = self.id.clone();
        let card = card.to_owned();
        self.events.record(CardAdded { library, card });
    }
}

fn added(library: &str, card: &str) -> CardAdded {
    CardAdded {
        library: library.into(),
        card: card.into(),
    }
}

/// The events stored for `library`.
async fn stored(store: &Arc<dyn DurableStore>, library: &str) -> Vec<events::store::StoredEvent> {
    let query = LogQuery {
        aggregate: Some(("Library".into(), library.into())),
        ..LogQuery::default()
    };
    store.query_log(&query).await.unwrap()
}

async fn deliver(bus: &Bus, store: &Arc<dyn DurableStore>) {
    let summary = Worker::new(bus, store)
        .handlers(["app.index_card"])
        .drain()
        .await
        .expect("the worker runs");
    assert!(
        summary.handlers.values().all(|h| h.failed == 0),
        "{summary}"
    );
}

/// `dispatch` stores the event with the id its inline handlers see, runs sync and async
/// inline handlers, and the worker delivers the stored copy with the same id.
async fn dispatch_stores_then_runs_every_inline_handler(store: Arc<dyn DurableStore>, lib: &str) {
    let bus = Bus::builder().store(store.clone()).build().unwrap();
    let report = bus.dispatch(&added(lib, "Black Lotus")).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(handlers(lib), ["sync", "async"]);
    let log = stored(&store, lib).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].event_id,
        calls(lib)[0].2,
        "the id the inline handlers saw"
    );

    deliver(&bus, &store).await;
    let durable = calls(lib).into_iter().find(|c| c.0 == "durable").unwrap();
    assert_eq!(durable.2, log[0].event_id);
    assert_eq!(durable.3, Some(log[0].position));
}

/// A store that cannot take the event: an `Err` distinct from handler failures, nothing
/// stored, no handler run.
async fn a_failing_store_is_an_error_and_nothing_runs(store: Arc<dyn DurableStore>, lib: &str) {
    let bus = Bus::builder().store(store.clone()).build().unwrap();
    let err = bus
        .dispatch(&Unserializable {
            library: lib.into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), NotPublished::NotStored { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("refuses to serialize"), "{err}");

    // The store itself failing: its log table is gone.
    let broken = format!("{lib}-broken");
    let err = {
        break_log(&store).await;
        let outcome = bus.dispatch(&added(&broken, "Mox")).await;
        restore_log(&store).await;
        outcome.unwrap_err()
    };
    assert!(
        matches!(err.kind(), NotPublished::NotStored { .. }),
        "{err}"
    );
    assert_eq!(err.event(), "app.card_added");
    assert!(
        handlers(&broken).is_empty(),
        "no handler ran: {:?}",
        calls(&broken)
    );
    assert!(stored(&store, &broken).await.is_empty());

    // Without a store: the same, on every backend.
    let bare = Bus::builder().build().unwrap();
    let err = bare.dispatch(&added(&broken, "Mox")).await.unwrap_err();
    assert!(matches!(err.kind(), NotPublished::NoStore { .. }), "{err}");
    assert!(handlers(&broken).is_empty());
}

/// The outbox commits every published event or none, and runs sync and async inline handlers
/// after the commit only.
async fn the_outbox_commits_or_rolls_back_and_then_runs_inline_handlers(
    store: Arc<dyn DurableStore>,
    lib: &str,
) {
    let bus = Bus::builder().store(store.clone()).build().unwrap();
    let failed = store
        .outbox(&bus, |outbox| {
            outbox.publish(added(lib, "Black Lotus"));
            Err::<(), BoxError>("payment declined".into())
        })
        .await;
    assert_eq!(failed.unwrap_err().to_string(), "payment declined");
    assert!(stored(&store, lib).await.is_empty());
    assert!(handlers(lib).is_empty());

    // One event of two cannot be stored: neither is.
    let failed = store
        .outbox(&bus, |outbox| {
            outbox.publish(added(lib, "Black Lotus"));
            outbox.publish(Unserializable {
                library: lib.into(),
            });
            Ok::<_, BoxError>(())
        })
        .await;
    assert!(failed.is_err());
    assert!(stored(&store, lib).await.is_empty());
    assert!(handlers(lib).is_empty());

    let (value, reports) = store
        .outbox(&bus, |outbox| {
            outbox.publish(added(lib, "Black Lotus"));
            outbox.publish(added(lib, "Mox Pearl"));
            assert!(
                handlers(lib).is_empty(),
                "inline handlers wait for the commit"
            );
            Ok::<_, BoxError>(7)
        })
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.is_ok()));
    assert_eq!(handlers(lib), ["sync", "async", "sync", "async"]);
    let log = stored(&store, lib).await;
    assert_eq!(log.len(), 2);
    let seen = calls(lib);
    assert_eq!(
        (seen[0].2, seen[0].3),
        (log[0].event_id, Some(log[0].position))
    );
    assert_eq!(
        (seen[2].2, seen[2].3),
        (log[1].event_id, Some(log[1].position))
    );
}

/// A recording aggregate's batch goes into the outbox: its events of mixed types commit
/// together and reach their own handlers in order; `batch.dispatch` does the same through the
/// bus's store.
async fn a_recorded_batch_goes_into_the_outbox(store: Arc<dyn DurableStore>, lib: &str) {
    let bus = Bus::builder().store(store.clone()).build().unwrap();
    let mut library = Library::create(lib);
    library.add("Black Lotus");
    let batch = library.take_events();
    let ((), reports) = store
        .outbox(&bus, |outbox| {
            outbox.publish_batch(batch);
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(handlers(lib), ["collection", "sync", "async"]);
    let names: Vec<_> = stored(&store, lib)
        .await
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["app.collection_created", "app.card_added"]);

    // Events of several streams in one outbox: each continues its own stream, in order.
    let other = format!("{lib}-other");
    store
        .outbox(&bus, |outbox| {
            outbox.publish(added(lib, "Mox Sapphire"));
            outbox.publish(added(&other, "Mox Ruby"));
            outbox.publish(added(lib, "Mox Jet"));
            Ok::<_, BoxError>(())
        })
        .await
        .unwrap();
    let sequences = |events: Vec<events::store::StoredEvent>| {
        events.iter().map(|e| e.sequence).collect::<Vec<_>>()
    };
    assert_eq!(sequences(stored(&store, lib).await), [1, 2, 3, 4]);
    assert_eq!(sequences(stored(&store, &other).await), [1]);
    let positions: Vec<_> = stored(&store, lib)
        .await
        .iter()
        .map(|e| e.position)
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    let other = format!("{lib}-dispatched");
    let mut library = Library::create(&other);
    library.add("Mox Pearl");
    let reports = library.take_events().dispatch(&bus).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(handlers(&other), ["collection", "sync", "async"]);
    assert_eq!(stored(&store, &other).await.len(), 2);
}

/// A sync `publish` cannot store, on any backend: an event with durable handlers is an `Err`
/// and runs nothing; one without runs its sync handlers.
async fn a_sync_publish_of_a_durable_event_is_an_error(store: Arc<dyn DurableStore>, lib: &str) {
    let bus = Bus::builder().store(store.clone()).build().unwrap();
    let err = bus.publish(&added(lib, "Black Lotus")).unwrap_err();
    assert!(
        matches!(err.kind(), NotPublished::NeedsAwait { .. }),
        "{err}"
    );
    assert!(handlers(lib).is_empty());
    assert!(stored(&store, lib).await.is_empty());
    let mut library = Library::create(lib);
    library.add("Black Lotus");
    assert!(library.take_events().publish(&bus).is_err());
    assert!(handlers(lib).is_empty(), "nothing of the batch ran");
}

/// Drops the log table through the backend's own connection (the only backend-specific
/// code here: making a store fail).
async fn break_log(store: &Arc<dyn DurableStore>) {
    let sql = "ALTER TABLE events_log RENAME TO events_log_away";
    run_sql(store, sql).await;
}

async fn restore_log(store: &Arc<dyn DurableStore>) {
    let sql = "ALTER TABLE events_log_away RENAME TO events_log";
    run_sql(store, sql).await;
}

async fn run_sql(store: &Arc<dyn DurableStore>, sql: &str) {
    if let Some(sqlite) = store.sqlite() {
        sqlite
            .transaction(|tx| tx.execute_batch(sql).map_err(BoxError::from))
            .unwrap();
    } else if let Some(postgres) = store.postgres() {
        postgres
            .client()
            .await
            .unwrap()
            .batch_execute(sql)
            .await
            .unwrap();
    }
}

async fn every_scenario(store: Arc<dyn DurableStore>, backend: &str) {
    let lib = |n: &str| format!("{backend}-{n}");
    dispatch_stores_then_runs_every_inline_handler(store.clone(), &lib("dispatch")).await;
    a_failing_store_is_an_error_and_nothing_runs(store.clone(), &lib("failing")).await;
    the_outbox_commits_or_rolls_back_and_then_runs_inline_handlers(store.clone(), &lib("outbox"))
        .await;
    a_recorded_batch_goes_into_the_outbox(store.clone(), &lib("batch")).await;
    a_sync_publish_of_a_durable_event_is_an_error(store, &lib("sync")).await;
}

#[tokio::test]
async fn on_sqlite() {
    let dir = std::env::temp_dir().join(format!("events-app-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("app.db").display());
    let store = events::store::connect(&url).await.unwrap();
    every_scenario(store, "sqlite").await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn on_postgres() {
    let Some(url) = postgres::schema_url("app_publish").await else {
        return;
    };
    let store = events::store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    every_scenario(store, "postgres").await;
}
