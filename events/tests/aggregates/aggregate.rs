//! Aggregates: recorded batches dispatched in order, event sourcing with optimistic
//! concurrency, projections rebuilt from the store, and the given/when/then fixture.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use events::sourcing::{rebuild, replay, Projection};
use events::store::{EventMetadata, EventStore, MemoryStore, StoreError, StoredEvent, StreamId};
use events::testing::{given, given_no_events};
use events::{
    event_handler, AggregateRoot, Bus, DomainEvent, EventRecorder, EventSourced, ExecuteError,
    Handle, Meta, Repository,
};
use serde::{Deserialize, Serialize};

// ---- a recording aggregate -------------------------------------------------------------

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(DomainEvent, Debug)]
struct ShelfBuilt {
    shelf: u32,
}

#[derive(DomainEvent, Debug)]
struct BookShelved {
    shelf: u32,
    title: String,
}

#[event_handler]
fn log_built(e: &ShelfBuilt) {
    LOG.lock().unwrap().push(format!("built {}", e.shelf));
}

#[event_handler]
fn log_shelved(e: &BookShelved) {
    LOG.lock()
        .unwrap()
        .push(format!("shelved {} on {}", e.title, e.shelf));
}

#[event_handler]
async fn log_shelved_async(e: &BookShelved) {
    LOG.lock()
        .unwrap()
        .push(format!("async shelved {}", e.title));
}

#[derive(Default)]
struct Shelf {
    id: u32,
    books: Vec<String>,
    events: EventRecorder,
}

impl AggregateRoot for Shelf {
    fn recorder(&mut self) -> &mut EventRecorder {
        &mut self.events
    }
}

impl Shelf {
    fn build(id: u32) -> Self {
        let mut shelf = Shelf {
            id,
            ..Shelf::default()
        };
        shelf.events.record(ShelfBuilt { shelf: id });
        shelf
    }

    fn shelve(&mut self, title: &str) {
        self.books.push(title.into());
        self.events.record(BookShelved {
            shelf: self.id,
            title: title.into(),
        });
    }
}

#[tokio::test]
async fn a_mixed_batch_reaches_each_types_handlers_in_recording_order() {
    LOG.lock().unwrap().clear();
    let bus = Bus::builder().build().unwrap();
    let mut shelf = Shelf::build(3);
    shelf.shelve("Dune");
    shelf.shelve("Emma");

    let batch = shelf.take_events();
    assert_eq!(batch.names(), ["ShelfBuilt", "BookShelved", "BookShelved"]);
    assert_eq!(batch.of::<BookShelved>()[1].title, "Emma");
    assert_eq!(batch.get::<ShelfBuilt>(0).unwrap().shelf, 3);
    assert!(
        shelf.take_events().is_empty(),
        "taking empties the recorder"
    );

    let reports = batch.dispatch(&bus).await.unwrap();
    assert!(reports.iter().all(|r| r.is_ok()));
    assert_eq!(
        *LOG.lock().unwrap(),
        [
            "built 3",
            "shelved Dune on 3",
            "async shelved Dune",
            "shelved Emma on 3",
            "async shelved Emma"
        ]
    );
}

#[test]
fn nothing_is_handed_out_when_the_save_fails() {
    let mut shelf = Shelf::build(9);
    let failed: Result<((), _), &str> = shelf.save_with(|_| Err("disk full"));
    assert_eq!(failed.unwrap_err(), "disk full");
    assert_eq!(
        shelf.events.len(),
        1,
        "the events wait for a successful save"
    );
    let ((), batch) = shelf
        .save_with(|s| {
            assert_eq!(s.id, 9);
            Ok::<_, &str>(())
        })
        .unwrap();
    assert_eq!(batch.names(), ["ShelfBuilt"]);
}

// ---- an event-sourced aggregate --------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "counter.started", aggregate = "Counter")]
struct Started {
    #[event(aggregate_id)]
    id: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "counter.incremented", aggregate = "Counter")]
struct Incremented {
    #[event(aggregate_id)]
    id: String,
    by: u32,
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    enum CounterEvent {
        Started(Started),
        Incremented(Incremented),
    }
}

#[derive(Default, Debug)]
struct Counter {
    started: bool,
    value: u32,
}

impl EventSourced for Counter {
    const TYPE: &'static str = "Counter";
    type Event = CounterEvent;

    fn apply(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Started(_) => self.started = true,
            CounterEvent::Incremented(e) => self.value += e.by,
        }
    }
}

#[derive(Clone)]
struct Start(String);
#[derive(Clone)]
struct Increment(String, u32);

#[derive(Debug, PartialEq)]
enum CounterError {
    AlreadyStarted,
    NotStarted,
}

impl Handle<Start> for Counter {
    type Error = CounterError;
    type Services = ();
    async fn handle(&self, cmd: Start, _: &()) -> Result<Vec<CounterEvent>, CounterError> {
        if self.started {
            return Err(CounterError::AlreadyStarted);
        }
        Ok(vec![Started { id: cmd.0 }.into()])
    }
}

impl Handle<Increment> for Counter {
    type Error = CounterError;
    type Services = ();
    async fn handle(&self, cmd: Increment, _: &()) -> Result<Vec<CounterEvent>, CounterError> {
        if !self.started {
            return Err(CounterError::NotStarted);
        }
        Ok(vec![Incremented {
            id: cmd.0,
            by: cmd.1,
        }
        .into()])
    }
}

#[test]
fn given_when_then() {
    let id = || "c".to_string();
    given_no_events::<Counter>()
        .when(Start(id()))
        .then([Started { id: id() }]);
    let counter = given::<Counter>([Started { id: id() }])
        .when(Increment(id(), 4))
        .then([Incremented { id: id(), by: 4 }]);
    assert_eq!(counter.value, 4);
    given::<Counter>([Started { id: id() }])
        .when(Start(id()))
        .then_error(CounterError::AlreadyStarted);
    given_no_events::<Counter>()
        .when(Increment(id(), 1))
        .then_error_matches(|e| *e == CounterError::NotStarted);
}

#[test]
#[should_panic(expected = "the command raised other events than expected")]
fn given_when_then_reports_other_events() {
    given::<Counter>([Started { id: "c".into() }])
        .when(Increment("c".into(), 4))
        .then([Incremented {
            id: "c".into(),
            by: 5,
        }]);
}

#[tokio::test]
async fn load_returns_the_state_and_version_append_checks_it() {
    let repo = Repository::<Counter, _>::new(MemoryStore::new());
    let (counter, version) = repo.load("c-1").await.unwrap();
    assert!(!counter.started);
    assert_eq!(version, 0);

    let cause = events::command_meta::<Dummy>();
    let done = repo
        .execute(
            "c-1",
            Start("c-1".into()),
            &(),
            EventMetadata::caused_by(&cause),
        )
        .await
        .unwrap();
    assert_eq!(done.version, 1);
    let (_, stored) = &done.events[0];
    assert_eq!(stored.name, "counter.started");
    assert_eq!(stored.aggregate_type, "Counter");
    assert_eq!(stored.aggregate_id, "c-1");
    assert_eq!(stored.sequence, 1);
    assert_eq!(stored.position, 1);
    assert_eq!(stored.payload, serde_json::json!({ "id": "c-1" }));
    assert_eq!(stored.metadata.causation_id, Some(cause.event_id()));
    assert_eq!(stored.event_id.get_version_num(), 7);

    let _ = repo
        .execute(
            "c-1",
            Increment("c-1".into(), 2),
            &(),
            EventMetadata::default(),
        )
        .await
        .unwrap();
    let _ = repo
        .execute(
            "c-1",
            Increment("c-1".into(), 3),
            &(),
            EventMetadata::default(),
        )
        .await
        .unwrap();
    let (counter, version) = repo.load("c-1").await.unwrap();
    assert_eq!((counter.value, version), (5, 3));

    let rejected = repo
        .execute("c-1", Start("c-1".into()), &(), EventMetadata::default())
        .await;
    assert!(matches!(
        rejected,
        Err(ExecuteError::Rejected(CounterError::AlreadyStarted))
    ));

    // A stale writer: nothing is written.
    let stale = repo
        .append(
            "c-1",
            1,
            vec![Incremented {
                id: "c-1".into(),
                by: 100,
            }
            .into()],
            EventMetadata::default(),
        )
        .await;
    assert!(matches!(
        stale,
        Err(StoreError::Conflict {
            expected: 1,
            actual: 3,
            ..
        })
    ));
    assert_eq!(repo.load("c-1").await.unwrap().1, 3);
    assert_eq!(repo.store().len(), 3);
}

#[derive(events::Command)]
struct Dummy;

#[events::command_handler]
fn dummy(_: Dummy) -> Result<(), events::BoxError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_race_one_wins_the_other_gets_the_conflict() {
    let store = MemoryStore::new();
    let repo = Arc::new(Repository::<Counter, _>::new(store.clone()));
    let _ = repo
        .execute("race", Start("race".into()), &(), EventMetadata::default())
        .await
        .unwrap();

    for round in 0..50u32 {
        // Both writers load the same version before either appends.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let writers = (0..2u32).map(|w| {
            let repo = Arc::clone(&repo);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let (_, version) = repo.load("race").await.unwrap();
                barrier.wait().await;
                let event = Incremented {
                    id: "race".into(),
                    by: round * 10 + w,
                };
                repo.append(
                    "race",
                    version,
                    vec![event.into()],
                    EventMetadata::default(),
                )
                .await
            })
        });
        let mut outcomes = Vec::new();
        for w in writers.collect::<Vec<_>>() {
            outcomes.push(w.await.unwrap());
        }
        let wins = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: exactly one writer wins");
        let conflict = outcomes.into_iter().find_map(Result::err).unwrap();
        assert!(
            matches!(conflict, StoreError::Conflict { .. }),
            "{conflict}"
        );
    }

    let stream = store
        .read_stream(StreamId {
            aggregate_type: "Counter",
            aggregate_id: "race",
        })
        .await
        .unwrap();
    let sequences: Vec<u64> = stream.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        (1..=51).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let positions: Vec<u64> = store
        .read_all(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(positions, (1..=51).collect::<Vec<_>>());
}

// ---- projections -----------------------------------------------------------------------

#[derive(Default)]
struct Totals(Mutex<BTreeMap<String, u32>>);

impl Projection for Totals {
    type Event = CounterEvent;
    fn reset(&self) -> Result<(), events::BoxError> {
        self.0.lock().unwrap().clear();
        Ok(())
    }
    fn apply(&self, event: &CounterEvent, stored: &StoredEvent) -> Result<(), events::BoxError> {
        if stored.aggregate_id == "poison" {
            return Err("the read model refuses poison".into());
        }
        let mut totals = self.0.lock().unwrap();
        match event {
            CounterEvent::Started(e) => {
                totals.insert(e.id.clone(), 0);
            }
            CounterEvent::Incremented(e) => *totals.entry(e.id.clone()).or_default() += e.by,
        }
        Ok(())
    }
}

static REPLAYED: Mutex<Vec<(u32, uuid::Uuid)>> = Mutex::new(Vec::new());

#[event_handler]
fn track_increment(e: &Incremented, meta: Meta) {
    REPLAYED.lock().unwrap().push((e.by, meta.event_id()));
}

#[tokio::test]
async fn a_projection_is_rebuilt_from_position_zero_and_replay_keeps_event_ids() {
    let store = MemoryStore::new();
    let repo = Repository::<Counter, _>::new(store.clone());
    for id in ["a", "b"] {
        let _ = repo
            .execute(id, Start(id.into()), &(), EventMetadata::default())
            .await
            .unwrap();
        let _ = repo
            .execute(id, Increment(id.into(), 2), &(), EventMetadata::default())
            .await
            .unwrap();
    }
    let _ = repo
        .execute("a", Increment("a".into(), 5), &(), EventMetadata::default())
        .await
        .unwrap();

    let totals = Totals::default();
    totals.0.lock().unwrap().insert("stale".into(), 99);
    let done = rebuild(&totals, &store).await.unwrap();
    assert_eq!((done.applied, done.position), (5, 5));
    assert_eq!(
        *totals.0.lock().unwrap(),
        BTreeMap::from([("a".to_string(), 7), ("b".to_string(), 2)])
    );

    let bus = Bus::builder().build().unwrap();
    REPLAYED.lock().unwrap().clear();
    let (done, reports) = replay::<CounterEvent, _>(&store, &bus, 2).await.unwrap();
    assert_eq!(done.applied, 3);
    assert!(reports.iter().all(|r| r.is_ok()));
    let all = store.read_all(2, 10).await.unwrap();
    let increments: Vec<_> = all
        .iter()
        .filter(|e| e.name == "counter.incremented")
        .map(|e| e.event_id)
        .collect();
    let replayed: Vec<_> = REPLAYED.lock().unwrap().iter().map(|(_, id)| *id).collect();
    assert_eq!(replayed, increments, "handlers see the stored event ids");
}

// ---- a rejected command's message ------------------------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("funds not available")]
struct NoFunds;

#[derive(events::Command)]
#[command(error = ExecuteError<NoFunds>)]
struct Spend;

#[events::command_handler]
fn spend(_: Spend) -> Result<(), ExecuteError<NoFunds>> {
    Err(ExecuteError::Rejected(NoFunds))
}

#[tokio::test]
async fn a_rejected_command_displays_the_aggregates_own_message() {
    let bus = Bus::builder().build().unwrap();
    let err = bus.send(Spend).await.unwrap_err();
    assert_eq!(err.to_string(), "command rejected: funds not available");
}

#[tokio::test]
async fn a_rebuild_stops_at_the_event_the_projection_fails_on_and_says_which() {
    let store = MemoryStore::new();
    let repo = Repository::<Counter, _>::new(store.clone());
    for id in ["a", "poison", "b"] {
        let _ = repo
            .execute(id, Start(id.into()), &(), EventMetadata::default())
            .await
            .unwrap();
    }
    let totals = Totals::default();
    let err = rebuild(&totals, &store).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "projection rebuild stopped at position 2 (`counter.started` of Counter `poison`), 1 events applied before it: the read model refuses poison; fix the cause and rebuild again"
    );
    // Nothing after the failing event was applied.
    assert_eq!(totals.0.lock().unwrap().keys().collect::<Vec<_>>(), ["a"]);
}
