#![cfg(feature = "sqlite")]
//! Durable delivery: checkpoints, catch-up, replay, retries, dead letters, hold-back,
//! undecodable payloads, upcasting, wake-ups, leases and fencing, the circuit breaker.
//!
//! The behavioural tests run once per backend in [`stores`]: each takes the store as an
//! `Arc<dyn DurableStore>`, so a new backend joins the suite by adding itself there. Tests
//! of one backend's own API (SQLite's transactional outbox, raw rows) say so in their name.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::sourcing::ViewKeeper;
use events::store::durable::{
    AppendAt, Claim, ClaimRequest, Claimed, DurableStore, OnReset, Owner, PendingFailure, Rewind,
    SegmentId,
};
use events::store::{EventMetadata, SqliteStore, StoreError, ViewWrite};
use events::worker::{FailureStatus, Summary, Worker, WorkerError};
use events::{event_handler, Bus, DomainEvent, Meta};
use serde::{Deserialize, Serialize};

fn bus() -> Bus {
    Bus::builder().build().expect("bus builds")
}

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

/// A fresh, empty store of every backend the suite runs on: SQLite in memory, and PostgreSQL
/// (4 segments) in a schema of its own when the feature is on (`support/postgres.rs`).
async fn stores() -> Vec<Arc<dyn DurableStore>> {
    let sqlite: Arc<dyn DurableStore> =
        Arc::new(SqliteStore::open_in_memory().expect("store opens"));
    #[allow(unused_mut)]
    let mut stores = vec![sqlite];
    #[cfg(feature = "postgres")]
    {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(store) = pg::store(&format!("durable_{n}")).await {
            stores.push(Arc::new(store));
        }
    }
    stores
}

/// Delivers everything due now to one handler.
async fn drain(bus: &Bus, store: &Arc<dyn DurableStore>, handler: &str) -> Summary {
    Worker::new(bus, store)
        .handlers([handler])
        .drain()
        .await
        .expect("worker runs")
}

/// Appends one typed event after whatever its stream holds.
async fn append<E: DomainEvent + Serialize>(
    store: &Arc<dyn DurableStore>,
    event: &E,
) -> events::store::StoredEvent {
    store
        .append_event(event, EventMetadata::default())
        .await
        .expect("append")
}

/// Takes the claim on a handler's (first) segment; panics when another owner holds it.
async fn take(store: &Arc<dyn DurableStore>, handler: &str, owner: &Owner, ttl: Duration) -> Claim {
    let request = ClaimRequest {
        segment: SegmentId {
            handler,
            segment: 0,
        },
        owner,
        ttl,
    };
    match store.claim(request).await.unwrap() {
        Claimed::Acquired(claim) => claim,
        Claimed::HeldBy(lease) => panic!("{handler} is held by {lease}"),
    }
}

/// The stored checkpoint of one (handler, segment): the fencing tests settle on segment 0
/// whatever segment the event hashes to.
async fn segment_checkpoint(store: &Arc<dyn DurableStore>, handler: &str, segment: u32) -> u64 {
    let checkpoints = store.checkpoints().await.unwrap();
    checkpoints
        .iter()
        .find(|c| c.handler == handler && c.segment == segment)
        .map_or(0, |c| c.position)
}

/// Resets a handler's checkpoint as an operator would: under the claims of all its segments.
async fn reset(
    store: &Arc<dyn DurableStore>,
    handler: &str,
    after: u64,
    failures: OnReset,
) -> Result<events::store::durable::Discarded, StoreError> {
    store
        .reset_handler(handler, Rewind { after, failures }, &Owner::current())
        .await
}

async fn dead_letters(store: &Arc<dyn DurableStore>, handler: &str) -> Vec<PendingFailure> {
    let failures = store.failures(Some(handler)).await.unwrap();
    failures
        .into_iter()
        .filter(|f| f.status == FailureStatus::Dead)
        .collect()
}

// --- delivery, catch-up, replay ---------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "cards.card_added", aggregate = "Library")]
struct CardAdded {
    #[event(aggregate_id)]
    library: u32,
    card: String,
}

static INDEXED: Mutex<Vec<(String, Meta)>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.index_card")]
fn index_card(e: &CardAdded, meta: Meta) {
    INDEXED.lock().unwrap().push((e.card.clone(), meta));
}

#[tokio::test]
async fn a_new_handler_catches_up_and_a_reset_replays() {
    for store in stores().await {
        a_new_handler_catches_up_and_a_reset_replays_on(store).await;
    }
}

async fn a_new_handler_catches_up_and_a_reset_replays_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    let mut ids = Vec::new();
    for card in ["lotus", "mox", "recall"] {
        let e = CardAdded {
            library: 1,
            card: card.into(),
        };
        ids.push(append(&store, &e).await.event_id);
    }
    // A sync publish never reaches a durable handler inline: it cannot store, so it refuses.
    let refused = bus.publish(&CardAdded {
        library: 1,
        card: "inline".into(),
    });
    assert!(refused.is_err());

    let summary = drain(&bus, &store, "test.index_card").await;
    assert_eq!(summary.handlers["test.index_card"].delivered, 3);
    let seen: Vec<_> = INDEXED.lock().unwrap().drain(..).collect();
    assert_eq!(
        seen.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["lotus", "mox", "recall"]
    );
    assert_eq!(
        seen.iter().map(|(_, m)| m.event_id()).collect::<Vec<_>>(),
        ids,
        "handlers see the stored ids"
    );

    let status = store
        .status("test.index_card", "cards.card_added")
        .await
        .unwrap();
    assert_eq!((status.checkpoint, status.lag), (3, 0));

    // Nothing is delivered twice...
    let again = drain(&bus, &store, "test.index_card").await;
    assert_eq!(again.handlers["test.index_card"].delivered, 0);
    // ...until the checkpoint is reset: replay from position 2.
    reset(&store, "test.index_card", 1, OnReset::KeepFailures)
        .await
        .unwrap();
    drain(&bus, &store, "test.index_card").await;
    let replayed: Vec<_> = INDEXED.lock().unwrap().drain(..).map(|(c, _)| c).collect();
    assert_eq!(replayed, ["mox", "recall"]);
}

// --- retries, dead letters, hold-back --------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "records.record_updated", aggregate = "Record")]
struct RecordUpdated {
    #[event(aggregate_id)]
    record: u32,
    step: u32,
}

static BROKEN: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());
static SYNCED: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.sync_record", max_attempts = 3, backoff_ms = 1)]
fn sync_record(e: &RecordUpdated) -> Result<(), String> {
    if BROKEN.lock().unwrap().contains(&(e.record, e.step)) {
        return Err(format!(
            "remote rejected record {} step {}",
            e.record, e.step
        ));
    }
    SYNCED.lock().unwrap().push((e.record, e.step));
    Ok(())
}

async fn drain_sync(bus: &Bus, store: &Arc<dyn DurableStore>) {
    // Retries are due a few milliseconds later: drain until nothing is left to retry.
    for _ in 0..50 {
        drain(bus, store, "test.sync_record").await;
        let retrying = store
            .failures(Some("test.sync_record"))
            .await
            .unwrap()
            .iter()
            .any(|f| f.status == FailureStatus::Retrying);
        if !retrying {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("retries never settled");
}

/// The tests on `test.sync_record` share its statics: one at a time.
static SYNC_RECORD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_dead_letter_holds_back_only_its_own_aggregate_until_retried() {
    let _one_at_a_time = SYNC_RECORD.lock().await;
    for store in stores().await {
        a_dead_letter_holds_back_only_its_own_aggregate_until_retried_on(store).await;
    }
}

async fn a_dead_letter_holds_back_only_its_own_aggregate_until_retried_on(
    store: Arc<dyn DurableStore>,
) {
    let bus = bus();
    BROKEN.lock().unwrap().push((1, 2));
    for (record, step) in [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3), (2, 3)] {
        append(&store, &RecordUpdated { record, step }).await;
    }
    drain_sync(&bus, &store).await;

    // Record 2 went through; record 1 stopped at its failing step 2, and step 3 waits behind it.
    let synced: Vec<_> = SYNCED.lock().unwrap().drain(..).collect();
    assert_eq!(synced, [(1, 1), (2, 1), (2, 2), (2, 3)]);
    let failures = store.failures(Some("test.sync_record")).await.unwrap();
    assert_eq!(failures.len(), 2, "{failures:?}");
    let dead = &failures[0];
    assert_eq!(
        (dead.status, dead.attempts, dead.position),
        (FailureStatus::Dead, 3, 3)
    );
    assert_eq!(dead.aggregate, "Record/1");
    assert_eq!(
        dead.last_error.as_deref(),
        Some("remote rejected record 1 step 2")
    );
    assert_eq!(
        (failures[1].status, failures[1].position),
        (FailureStatus::Held, 5)
    );
    let status = store
        .status("test.sync_record", "records.record_updated")
        .await
        .unwrap();
    assert_eq!(
        (status.checkpoint, status.lag, status.dead, status.held),
        (6, 0, 1, 1)
    );

    // The remote is fixed; the operator retries: step 2, then the held step 3, in order.
    BROKEN.lock().unwrap().clear();
    assert_eq!(
        store.retry_dead_letters(Some(dead.id), None).await.unwrap(),
        1
    );
    drain_sync(&bus, &store).await;
    assert_eq!(
        SYNCED.lock().unwrap().drain(..).collect::<Vec<_>>(),
        [(1, 2), (1, 3)]
    );
    assert!(store
        .failures(Some("test.sync_record"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn dropping_a_dead_letter_releases_the_events_behind_it() {
    let _one_at_a_time = SYNC_RECORD.lock().await;
    for store in stores().await {
        dropping_a_dead_letter_releases_the_events_behind_it_on(store).await;
    }
}

async fn dropping_a_dead_letter_releases_the_events_behind_it_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    BROKEN.lock().unwrap().push((7, 1));
    for step in 1..=3 {
        append(&store, &RecordUpdated { record: 7, step }).await;
    }
    drain_sync(&bus, &store).await;
    let dead = dead_letters(&store, "test.sync_record").await;
    assert_eq!(dead.len(), 1);
    assert!(store.drop_dead_letter(dead[0].id).await.unwrap());
    drain_sync(&bus, &store).await;
    let synced: Vec<_> = SYNCED
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|(r, _)| *r == 7)
        .collect();
    assert_eq!(synced, [(7, 2), (7, 3)]);
    SYNCED.lock().unwrap().retain(|(r, _)| *r != 7);
    BROKEN.lock().unwrap().clear();
}

// --- bad payloads and schema evolution -------------------------------------------------------

/// Version 2 split `name` into first and last name; version 1 rows are upcast on read.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "users.user_registered", version = 2, aggregate = "User", upcast = user_registered_v1)]
struct UserRegistered {
    #[event(aggregate_id)]
    user: u32,
    first_name: String,
    last_name: String,
}

fn user_registered_v1(
    version: u32,
    mut payload: serde_json::Value,
) -> Result<serde_json::Value, events::BoxError> {
    assert_eq!(version, 1);
    let name = payload["name"]
        .as_str()
        .ok_or("v1 payload without `name`")?
        .to_owned();
    let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
    payload["first_name"] = first.into();
    payload["last_name"] = last.into();
    Ok(payload)
}

static WELCOMED: Mutex<Vec<UserRegistered>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.welcome")]
async fn welcome(e: &UserRegistered) {
    WELCOMED.lock().unwrap().push(e.clone());
}

/// Appends a row as an older (or newer) program would have written it.
async fn append_raw(
    store: &Arc<dyn DurableStore>,
    user: u32,
    version: u32,
    payload: serde_json::Value,
) {
    let row = events::store::NewEvent {
        event_id: uuid::Uuid::now_v7(),
        name: "users.user_registered".into(),
        version,
        payload,
        metadata: EventMetadata::default(),
        occurred_at: std::time::SystemTime::now(),
    };
    let stream = events::store::StreamId {
        aggregate_type: "User",
        aggregate_id: &user.to_string(),
    };
    store
        .append_to(AppendAt::Version(stream.at(0)), vec![row])
        .await
        .unwrap();
}

#[tokio::test]
async fn old_rows_are_upcast_and_bad_payloads_become_dead_letters() {
    for store in stores().await {
        old_rows_are_upcast_and_bad_payloads_become_dead_letters_on(store).await;
    }
}

async fn old_rows_are_upcast_and_bad_payloads_become_dead_letters_on(store: Arc<dyn DurableStore>) {
    use serde_json::json;
    let bus = bus();
    append_raw(&store, 1, 1, json!({"user": 1, "name": "Ada Lovelace"})).await; // a real v1 row
    append_raw(&store, 2, 1, json!({"user": 2})).await; // v1 without a name: the upcaster fails
    append_raw(&store, 3, 2, json!({"user": 3, "first_name": 7})).await; // v2, wrong type
    append_raw(&store, 4, 3, json!({"user": 4})).await; // from a newer program
    let grace = UserRegistered {
        user: 5,
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
    };
    append(&store, &grace).await;

    let summary = drain(&bus, &store, "test.welcome").await;
    assert_eq!(summary.handlers["test.welcome"].delivered, 2);
    assert_eq!(summary.handlers["test.welcome"].dead_lettered, 3);
    let welcomed: Vec<_> = WELCOMED
        .lock()
        .unwrap()
        .drain(..)
        .map(|u| format!("{} {} {}", u.user, u.first_name, u.last_name))
        .collect();
    assert_eq!(welcomed, ["1 Ada Lovelace", "5 Grace Hopper"]);

    let dead = dead_letters(&store, "test.welcome").await;
    let errors: Vec<_> = dead
        .iter()
        .map(|d| (d.position, d.attempts, d.last_error.clone().unwrap()))
        .collect();
    assert_eq!(
        errors[0],
        (
            2,
            1,
            "cannot decode the stored payload: v1 payload without `name`".to_owned()
        )
    );
    // The field's path, the stored and current versions, and what to do (issue 9, item 7).
    assert_eq!(
        errors[1].2,
        "cannot decode the stored payload: `users.user_registered`: at `first_name`: invalid type: integer `7`, expected a string; \
         stored as version 2, this program reads version 2; \
         if the event's shape changed, bump its `#[event(version = ..)]` and add an `upcast` that converts older payloads",
        "{errors:?}"
    );
    assert!(
        errors[2]
            .2
            .contains("stored with schema version 3, and this program knows version 2"),
        "{errors:?}"
    );
}

fn sqlite_insert_raw(store: &SqliteStore, position: u32, version: u32, payload: &str) {
    store
        .transaction(|tx| {
            tx.execute(
                "INSERT INTO events_log (position, event_id, name, version, aggregate_type, aggregate_id, sequence, payload, metadata, occurred_at)
                 VALUES (?1, ?2, 'users.user_registered', ?3, 'User', ?1, 1, ?4, '{}', 0)",
                rusqlite::params![position, uuid::Uuid::now_v7().to_string(), version, payload],
            )
            .map_err(|e| StoreError::Backend(e.into()))
        })
        .unwrap();
}

#[tokio::test]
async fn sqlite_a_payload_that_is_not_json_becomes_a_dead_letter() {
    let sqlite = SqliteStore::open_in_memory().unwrap();
    sqlite_insert_raw(&sqlite, 1, 2, "not json at all");
    let store: Arc<dyn DurableStore> = Arc::new(sqlite);
    let summary = drain(&bus(), &store, "test.welcome").await;
    assert_eq!(summary.handlers["test.welcome"].dead_lettered, 1);
    let dead = dead_letters(&store, "test.welcome").await;
    let error = dead[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("invalid type: string \"not json at all\""),
        "{error}"
    );
}

// --- the worker as a long-running process ----------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "forms.form_submitted")]
struct FormSubmitted {
    form: u32,
}

static SUBMITTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.store_submission")]
fn store_submission(e: &FormSubmitted) {
    SUBMITTED.lock().unwrap().push(e.form);
}

#[tokio::test]
async fn a_running_worker_wakes_on_append_without_waiting_for_its_poll() {
    for store in stores().await {
        a_running_worker_wakes_on_append_without_waiting_for_its_poll_on(store).await;
    }
}

async fn a_running_worker_wakes_on_append_without_waiting_for_its_poll_on(
    store: Arc<dyn DurableStore>,
) {
    let bus = bus();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(&bus, &store)
        .handlers(["test.store_submission"])
        .poll_interval(Duration::from_secs(3600))
        .run_until(async move {
            let _ = stopped.await;
        });
    let worker = tokio::spawn(worker);
    tokio::time::sleep(Duration::from_millis(50)).await; // the worker is idle, waiting
    append(&store, &FormSubmitted { form: 11 }).await;
    let delivered = async {
        while !SUBMITTED.lock().unwrap().contains(&11) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), delivered)
        .await
        .expect("woken by the append, not by the hour-long poll");

    // While it runs, it holds the handler's lease, with this process's pid.
    let status = store
        .status("test.store_submission", "forms.form_submitted")
        .await
        .unwrap();
    // One lease per segment of the handler's stream (SQLite: one).
    assert_eq!(status.leases.len(), store.segments() as usize, "{status:?}");
    assert_eq!(status.leases[0].owner.pid, std::process::id());
    append(&store, &FormSubmitted { form: 12 }).await;
    stop.send(()).unwrap();
    let summary = worker.await.unwrap().unwrap();
    assert!(summary.handlers["test.store_submission"].delivered >= 1);
    assert_eq!(
        store
            .status("test.store_submission", "forms.form_submitted")
            .await
            .unwrap()
            .leases,
        [],
        "released on stop"
    );
    SUBMITTED.lock().unwrap().clear();
}

#[tokio::test]
async fn max_runtime_stops_the_worker_cleanly() {
    let (bus, store) = (bus(), stores().await.remove(0));
    let summary = Worker::new(&bus, &store)
        .handlers(["test.store_submission"])
        .max_runtime(Duration::from_millis(100))
        .run_until(std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary.handlers["test.store_submission"].delivered, 0);
}

#[tokio::test]
async fn unknown_or_inline_handlers_are_refused_all_at_once() {
    let (bus, store) = (bus(), stores().await.remove(0));
    let err = Worker::new(&bus, &store)
        .handlers(["test.nope", "durable::inline_only"])
        .drain()
        .await
        .unwrap_err();
    let WorkerError::Invalid(problems) = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 2, "{err}");
    assert!(
        err.to_string()
            .contains("no handler is named `test.nope`; durable handlers: "),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("handler `durable::inline_only` is sync, not durable"),
        "{err}"
    );
}

#[event_handler]
fn inline_only(_: &FormSubmitted) {}

#[tokio::test]
async fn worker_errors_print_their_message_in_debug_too() {
    let (bus, store) = (bus(), stores().await.remove(0));
    let err = Worker::new(&bus, &store)
        .handlers(["test.nope"])
        .drain()
        .await
        .unwrap_err();
    // What `fn main() -> Result<(), WorkerError>` and `.expect(..)` print.
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(
        format!("{err:?}")
            .starts_with("the worker cannot start:\n  - no handler is named `test.nope`"),
        "{err:?}"
    );
}

// --- circuit breaker -------------------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "webhooks.ping", aggregate = "Hook")]
struct Ping {
    #[event(aggregate_id)]
    hook: u32,
}

static PINGS: Mutex<u32> = Mutex::new(0);

#[event_handler(durable, name = "test.ping", max_attempts = 10, backoff_ms = 60000)]
fn ping(_: &Ping) -> Result<(), &'static str> {
    *PINGS.lock().unwrap() += 1;
    Err("connection refused")
}

#[tokio::test]
async fn the_circuit_opens_after_failures_in_a_row() {
    for store in stores().await {
        *PINGS.lock().unwrap() = 0;
        the_circuit_opens_after_failures_in_a_row_on(store).await;
    }
}

async fn the_circuit_opens_after_failures_in_a_row_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    for hook in 0..10 {
        append(&store, &Ping { hook }).await;
    }
    let summary = Worker::new(&bus, &store)
        .handlers(["test.ping"])
        .circuit_breaker(3, Duration::from_secs(3600))
        .concurrency(1)
        .drain()
        .await
        .unwrap();
    // Three attempts, then the handler pauses: the other seven events wait, untouched. (With
    // several segments each segment's subscription has its own breaker: three per segment.
    // With more events in flight, those already started when the circuit opens finish.)
    let pings = *PINGS.lock().unwrap();
    if store.segments() == 1 {
        assert_eq!(pings, 3);
    } else {
        assert!((1..=3 * store.segments()).contains(&pings), "{pings}");
    }
    assert_eq!(summary.handlers["test.ping"].failed, u64::from(pings));
    let status = store.status("test.ping", "webhooks.ping").await.unwrap();
    assert_eq!(
        (status.retrying, status.lag),
        (u64::from(pings), 10 - u64::from(pings))
    );
}

// --- transactional outbox --------------------------------------------------------------------

#[test]
fn sqlite_application_rows_and_their_events_commit_or_roll_back_together() {
    use events::store::{NewEvent, StreamId};
    use events::BoxError;

    let store = SqliteStore::open_in_memory().unwrap();
    store
        .transaction(|tx| {
            Ok::<_, BoxError>(tx.execute_batch("CREATE TABLE cards (library INTEGER, card TEXT)")?)
        })
        .unwrap();
    let add = |card: &'static str, fail: bool| {
        store.transaction(|tx| {
            tx.execute("INSERT INTO cards VALUES (1, ?1)", [card])?;
            let version =
                tx.query_row("SELECT COUNT(*) - 1 FROM cards", [], |r| r.get::<_, i64>(0))? as u64;
            let e = NewEvent::new(
                &CardAdded {
                    library: 1,
                    card: card.into(),
                },
                EventMetadata::default(),
            )?;
            SqliteStore::append_in(
                tx,
                StreamId {
                    aggregate_type: "Library",
                    aggregate_id: "1",
                }
                .at(version),
                vec![e],
            )?;
            if fail {
                return Err::<(), BoxError>("the card is banned".into());
            }
            Ok(())
        })
    };
    add("lotus", false).unwrap();
    assert_eq!(
        add("banned", true).unwrap_err().to_string(),
        "the card is banned"
    );
    add("mox", false).unwrap();

    let cards: Vec<String> = store
        .transaction(|tx| {
            let mut stmt = tx.prepare("SELECT card FROM cards ORDER BY rowid")?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, BoxError>(rows)
        })
        .unwrap();
    assert_eq!(
        cards,
        ["lotus", "mox"],
        "the failed transaction left no row"
    );
    assert_eq!(
        store.head().unwrap(),
        2,
        "...and no event: positions stay gap-free"
    );
}

// --- every read path upcasts -----------------------------------------------------------------

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    enum UserEvent {
        Registered(UserRegistered),
    }
}

#[tokio::test]
async fn sqlite_aggregates_and_projections_read_old_rows_through_the_upcaster() {
    use events::store::{EventStore, StreamId};

    let store = SqliteStore::open_in_memory().unwrap();
    sqlite_insert_raw(&store, 1, 1, r#"{"user": 1, "name": "Ada Lovelace"}"#);
    sqlite_insert_raw(&store, 2, 1, r#"{"user": 2}"#);
    let stream = store
        .read_stream(StreamId {
            aggregate_type: "User",
            aggregate_id: "1",
        })
        .await
        .unwrap();
    let decoded = stream[0].decode::<UserEvent>().unwrap();
    let expected = UserRegistered {
        user: 1,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    };
    assert_eq!(decoded, Some(UserEvent::Registered(expected)));

    let all = store.read_all(0, 10).await.unwrap();
    let err = all[1].decode::<UserEvent>().unwrap_err();
    assert!(
        matches!(err, StoreError::Upcast { position: 2, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "cannot upcast event `users.user_registered` at position 2: v1 payload without `name`"
    );
}

// --- batch handlers --------------------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "search.document_changed", aggregate = "Document")]
struct DocumentChanged {
    #[event(aggregate_id)]
    doc: u32,
    rev: u32,
}

static BATCHES: Mutex<Vec<Vec<(u32, u32)>>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.reindex", max_attempts = 1)]
fn reindex(docs: &[DocumentChanged]) -> Result<(), String> {
    if let Some(bad) = docs.iter().find(|d| d.rev == 0) {
        return Err(format!("document {} has no revision", bad.doc));
    }
    BATCHES
        .lock()
        .unwrap()
        .push(docs.iter().map(|d| (d.doc, d.rev)).collect());
    Ok(())
}

/// The batches `test.reindex` received are `expected` on one segment. With several, documents
/// may sit in different segments, which take their own runs (a bad event splits only its own
/// segment's run): each document's revisions still arrive in order, each exactly once.
fn assert_runs<const N: usize>(store: &Arc<dyn DurableStore>, expected: [Vec<(u32, u32)>; N]) {
    let batches = BATCHES.lock().unwrap().drain(..).collect::<Vec<_>>();
    if store.segments() == 1 {
        return assert_eq!(batches, expected);
    }
    let per_doc = |batches: &[Vec<(u32, u32)>]| {
        let mut docs = std::collections::BTreeMap::<u32, Vec<u32>>::new();
        for (doc, rev) in batches.iter().flatten() {
            docs.entry(*doc).or_default().push(*rev);
        }
        docs
    };
    assert_eq!(per_doc(&batches), per_doc(&expected), "{batches:?}");
}

#[tokio::test]
async fn batch_handlers_take_runs_and_isolate_a_bad_event() {
    for store in stores().await {
        batch_handlers_take_runs_and_isolate_a_bad_event_on(store).await;
    }
}

async fn batch_handlers_take_runs_and_isolate_a_bad_event_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    assert!(events::catalog()
        .handler("test.reindex")
        .unwrap()
        .is_batch());
    for (doc, rev) in [(1, 1), (2, 1), (1, 2)] {
        append(&store, &DocumentChanged { doc, rev }).await;
    }
    drain(&bus, &store, "test.reindex").await;
    assert_runs(&store, [vec![(1, 1), (2, 1), (1, 2)]]);

    // A bad event fails its batch; the batch is redelivered event by event: the bad one is
    // dead-lettered, the later event of its document is held, the others go through.
    for (doc, rev) in [(3, 1), (1, 0), (3, 2), (1, 3)] {
        append(&store, &DocumentChanged { doc, rev }).await;
    }
    let summary = drain(&bus, &store, "test.reindex").await;
    let s = summary.handlers["test.reindex"];
    assert_eq!(
        (s.delivered, s.dead_lettered, s.held),
        (2, 1, 1),
        "{summary}"
    );
    assert_runs(&store, [vec![(3, 1)], vec![(3, 2)]]);
    let dead = dead_letters(&store, "test.reindex").await;
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("document 1 has no revision")
    );

    // Next run: the held event is delivered alone once the dead letter is dropped; new events
    // after it come as one batch again.
    store.drop_dead_letter(dead[0].id).await.unwrap();
    append(&store, &DocumentChanged { doc: 4, rev: 1 }).await;
    append(&store, &DocumentChanged { doc: 5, rev: 1 }).await;
    drain(&bus, &store, "test.reindex").await;
    assert_runs(&store, [vec![(1, 3)], vec![(4, 1), (5, 1)]]);
    assert_eq!(
        store
            .status("test.reindex", "search.document_changed")
            .await
            .unwrap()
            .lag,
        0
    );
}

// --- leases ----------------------------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "mail.newsletter_queued")]
struct NewsletterQueued {
    id: u32,
}

static SENT: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.send_newsletter")]
async fn send_newsletter(e: &NewsletterQueued) {
    tokio::time::sleep(Duration::from_millis(25)).await;
    SENT.lock().unwrap().push(e.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_deliver_the_same_handler_at_once_even_through_long_steps() {
    for store in stores().await {
        two_workers_never_deliver_the_same_handler_at_once_on(store).await;
    }
}

async fn two_workers_never_deliver_the_same_handler_at_once_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    for id in 0..24 {
        append(&store, &NewsletterQueued { id }).await;
    }
    // 24 deliveries of 25 ms take 600 ms, twice the 300 ms lease: the worker holding it must
    // renew it between deliveries, or the other one would take over mid-step. (Renewal starts
    // with half the lease left, so a loaded machine may be 125 ms late without a false alarm.)
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut stopped = stopped.clone();
            let worker = Worker::new(&bus, &store)
                .handlers(["test.send_newsletter"])
                .lease_ttl(Duration::from_millis(300))
                .poll_interval(Duration::from_millis(5));
            tokio::spawn(worker.run_until(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        })
        .collect();
    let all_sent = async {
        while SENT.lock().unwrap().len() < 24 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all_sent)
        .await
        .expect("all sent");
    tokio::time::sleep(Duration::from_millis(350)).await; // a duplicate would show up by now
    stop.send(true).unwrap();
    let mut delivered = 0;
    for worker in workers {
        delivered += worker.await.unwrap().unwrap().handlers["test.send_newsletter"].delivered;
    }
    assert_eq!(delivered, 24);
    assert_eq!(
        std::mem::take(&mut *SENT.lock().unwrap()),
        (0..24).collect::<Vec<_>>(),
        "each once, in order"
    );
}

// --- optimistic concurrency on SQLite --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_writers_race_on_one_stream_one_wins_and_nothing_is_torn() {
    use events::store::{EventStore, NewEvent, StreamId};

    let path = std::env::temp_dir().join(format!("events-race-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let stream = StreamId {
        aggregate_type: "Library",
        aggregate_id: "race",
    };
    for round in 0..20u64 {
        // Two connections, as two processes would have, both believing the stream is at `round`.
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let store = SqliteStore::open(&path).unwrap();
                tokio::spawn(async move {
                    let e = NewEvent::new(
                        &CardAdded {
                            library: 0,
                            card: format!("{round}-{w}"),
                        },
                        EventMetadata::default(),
                    )
                    .unwrap();
                    store
                        .append(
                            StreamId {
                                aggregate_type: "Library",
                                aggregate_id: "race",
                            }
                            .at(round),
                            vec![e],
                        )
                        .await
                })
            })
            .collect();
        let mut won = 0;
        for writer in writers {
            match writer.await.unwrap() {
                Ok(stored) => {
                    won += 1;
                    assert_eq!(stored[0].sequence, round + 1);
                }
                Err(StoreError::Conflict {
                    expected, actual, ..
                }) => assert_eq!((expected, actual), (round, round + 1)),
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
    let events = SqliteStore::open(&path)
        .unwrap()
        .read_stream(stream)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        events.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

// --- claims and fencing ----------------------------------------------------------------------

#[tokio::test]
async fn a_claim_lost_to_another_worker_cannot_settle_or_reset() {
    for store in stores().await {
        a_claim_lost_to_another_worker_cannot_settle_or_reset_on(store).await;
    }
}

async fn a_claim_lost_to_another_worker_cannot_settle_or_reset_on(store: Arc<dyn DurableStore>) {
    use events::store::durable::{Record, Settlement};
    let handler = "test.fenced";
    let event = append(&store, &FormSubmitted { form: 1 }).await;
    let (a, b) = (Owner::current(), Owner::current());
    let first = take(&store, handler, &a, Duration::from_millis(1)).await;
    // A renewal by the same owner keeps the token.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let renewed = take(&store, handler, &a, Duration::from_millis(1)).await;
    assert_eq!(renewed.token, first.token);
    // A stalls past its lease; B takes the handler over with a newer token.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let taken = take(&store, handler, &b, Duration::from_secs(30)).await;
    assert!(taken.token > first.token);
    // A resumes: it cannot record anything, nor move the checkpoint.
    let done = Record::Done;
    let deliver = |claim: Claim| {
        let (store, event, done) = (store.clone(), event.clone(), done.clone());
        async move {
            let settled = Settlement::New {
                event: &event,
                record: &done,
                views: &[],
                timers: &[],
            };
            store.settle(&claim, settled).await
        }
    };
    let err = deliver(first.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    let err = store
        .reset_checkpoint(
            &first,
            Rewind {
                after: 0,
                failures: OnReset::KeepFailures,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert_eq!(segment_checkpoint(&store, handler, 0).await, 0);
    // A sees who holds it now.
    let Claimed::HeldBy(lease) = store
        .claim(ClaimRequest {
            segment: SegmentId {
                handler,
                segment: 0,
            },
            owner: &a,
            ttl: Duration::from_secs(30),
        })
        .await
        .unwrap()
    else {
        panic!("B holds it");
    };
    assert_eq!(lease.owner, b);
    // B settles fine; after B releases, A gets a newer token still.
    deliver(taken.clone()).await.unwrap();
    store.release(&taken).await.unwrap();
    let again = take(&store, handler, &a, Duration::from_secs(30)).await;
    assert!(again.token > taken.token);
    assert_eq!(segment_checkpoint(&store, handler, 0).await, event.position);
}

#[tokio::test]
async fn renaming_a_checkpoint_moves_its_position_and_failures_and_refuses_conflicts() {
    for store in stores().await {
        renaming_a_checkpoint_on(store).await;
    }
}

async fn renaming_a_checkpoint_on(store: Arc<dyn DurableStore>) {
    use events::store::durable::{Record, Settlement};
    let first = append(&store, &FormSubmitted { form: 1 }).await;
    let owner = Owner::current();
    let ttl = Duration::from_secs(30);
    let old = take(&store, "test.old_name", &owner, ttl).await;
    let retry = Record::Retry {
        attempts: 1,
        at: std::time::SystemTime::now(),
        error: "down".into(),
    };
    store
        .settle(
            &old,
            Settlement::New {
                event: &first,
                record: &retry,
                views: &[],
                timers: &[],
            },
        )
        .await
        .unwrap();
    let refused = store
        .rename_checkpoint("test.old_name", "test.new_name")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Refused(m) if m.contains("is being delivered by pid")),
        "{refused}"
    );
    store.release(&old).await.unwrap();
    let taken = take(&store, "test.taken_name", &owner, ttl).await;
    store.release(&taken).await.unwrap();
    let refused = store
        .rename_checkpoint("test.old_name", "test.taken_name")
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "a checkpoint named `test.taken_name` already exists; reset or rename it first"
    );
    store
        .rename_checkpoint("test.old_name", "test.new_name")
        .await
        .unwrap();
    let checkpoints: Vec<_> = store
        .checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.handler, c.position))
        .collect();
    assert!(checkpoints.contains(&("test.new_name".into(), first.position)));
    assert!(!checkpoints.iter().any(|(h, _)| h == "test.old_name"));
    let failures = store.failures(Some("test.new_name")).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].status, FailureStatus::Retrying);
    let missing = store
        .rename_checkpoint("test.old_name", "test.other")
        .await
        .unwrap_err();
    assert!(missing
        .to_string()
        .contains("no checkpoint named `test.old_name`"));
}

#[tokio::test]
async fn a_worker_that_never_gets_the_claim_names_the_holder() {
    for store in stores().await {
        // Every segment: a worker that holds any segment of a handler delivers it.
        let holder = Owner::current();
        let mut claims = Vec::new();
        for segment in 0..store.segments() {
            let request = ClaimRequest {
                segment: SegmentId {
                    handler: "test.store_submission",
                    segment,
                },
                owner: &holder,
                ttl: Duration::from_secs(30),
            };
            match store.claim(request).await.unwrap() {
                Claimed::Acquired(claim) => claims.push(claim),
                Claimed::HeldBy(lease) => panic!("held by {lease}"),
            }
        }
        let summary = Worker::new(&bus(), &store)
            .handlers(["test.store_submission"])
            .drain()
            .await
            .unwrap();
        let lease = summary.held_elsewhere["test.store_submission"]
            .as_ref()
            .expect("the drain saw the holder's lease");
        assert_eq!(lease.owner, holder);
        assert!(
            summary.to_string().starts_with(&format!(
                "test.store_submission: not delivered by this worker: another worker holds it: pid {} on ",
                std::process::id()
            )),
            "{summary}"
        );
        for claim in &claims {
            store.release(claim).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_reset_never_moves_forward_nor_overwrites_a_pending_failure() {
    for store in stores().await {
        a_reset_never_moves_forward_on(store).await;
    }
}

async fn a_reset_never_moves_forward_on(store: Arc<dyn DurableStore>) {
    use events::store::durable::{Record, Settlement};
    let handler = "test.reset_contract";
    let mut stored = Vec::new();
    for form in 1..=3 {
        stored.push(append(&store, &FormSubmitted { form }).await);
    }
    let claim = take(&store, handler, &Owner::current(), Duration::from_secs(30)).await;
    let settle = |record: Record, i: usize| {
        let (store, claim, e) = (store.clone(), claim.clone(), stored[i].clone());
        async move {
            let new = Settlement::New {
                event: &e,
                record: &record,
                views: &[],
                timers: &[],
            };
            store.settle(&claim, new).await.unwrap();
        }
    };
    settle(Record::Done, 0).await;
    let retry = Record::Retry {
        attempts: 1,
        at: std::time::SystemTime::now() + Duration::from_secs(3600),
        error: "down".into(),
    };
    settle(retry, 1).await;
    assert_eq!(segment_checkpoint(&store, handler, 0).await, 2);

    // Forward: nothing is skipped. Past the head: refused.
    store
        .reset_checkpoint(
            &claim,
            Rewind {
                after: 3,
                failures: OnReset::KeepFailures,
            },
        )
        .await
        .unwrap();
    assert_eq!(segment_checkpoint(&store, handler, 0).await, 2);
    let err = store
        .reset_checkpoint(
            &claim,
            Rewind {
                after: 4,
                failures: OnReset::KeepFailures,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::PastHead {
                position: 5,
                head: 3
            }
        ),
        "{err}"
    );

    // Back to the start, keeping failures: the retry survives being held on the way.
    store
        .reset_checkpoint(
            &claim,
            Rewind {
                after: 0,
                failures: OnReset::KeepFailures,
            },
        )
        .await
        .unwrap();
    assert_eq!(segment_checkpoint(&store, handler, 0).await, 0);
    settle(Record::Hold, 1).await;
    let failures = store.failures(Some(handler)).await.unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (failures[0].status, failures[0].attempts),
        (FailureStatus::Retrying, 1)
    );
    let discarded = store
        .reset_checkpoint(
            &claim,
            Rewind {
                after: 0,
                failures: OnReset::DiscardFailures,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (discarded.retrying, discarded.dead, discarded.held),
        (1, 0, 0)
    );
    assert!(store.failures(Some(handler)).await.unwrap().is_empty());
    store.release(&claim).await.unwrap();
}

// --- views kept by durable handlers ------------------------------------------------------------

/// A staged write of view `totals`' row `id`.
fn totals_write(id: &str, n: u64, expected: Option<u64>, version: u64) -> ViewWrite {
    ViewWrite {
        view: "totals",
        id: id.into(),
        body: serde_json::json!({ "n": n }),
        expected,
        version,
    }
}

#[tokio::test]
async fn view_writes_commit_or_roll_back_with_the_checkpoint() {
    for store in stores().await {
        view_writes_commit_or_roll_back_with_the_checkpoint_on(store).await;
    }
}

async fn view_writes_commit_or_roll_back_with_the_checkpoint_on(store: Arc<dyn DurableStore>) {
    use events::store::durable::{Record, Settlement};
    let handler = "test.views_settle";
    let first = append(&store, &FormSubmitted { form: 1 }).await;
    let second = append(&store, &FormSubmitted { form: 2 }).await;
    let owner = Owner::current();
    let claim = take(&store, handler, &owner, Duration::from_secs(30)).await;
    let settle = |event: events::store::StoredEvent, views: Vec<ViewWrite>| {
        let (store, claim) = (store.clone(), claim.clone());
        async move {
            let done = Record::Done;
            let views = &views;
            let event = &event;
            let settled = Settlement::New {
                event,
                record: &done,
                views,
                timers: &[],
            };
            store.settle(&claim, settled).await
        }
    };
    let totals = |id: &'static str| {
        let store = store.clone();
        async move { store.load_view("totals", id).await.unwrap() }
    };

    // Committed together.
    settle(first.clone(), vec![totals_write("all", 1, None, 1)])
        .await
        .unwrap();
    assert_eq!(
        totals("all").await,
        Some((serde_json::json!({ "n": 1 }), 1))
    );
    assert_eq!(segment_checkpoint(&store, handler, 0).await, first.position);

    // A write built on a view that changed since (here: one that now exists, or another
    // version) fails the whole settlement: no view written, no checkpoint moved.
    for stale in [None, Some(7)] {
        let writes = vec![
            totals_write("other", 5, None, 1),
            totals_write("all", 2, stale, 2),
        ];
        let err = settle(second.clone(), writes).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::ViewConflict { view, id, expected } if view == "totals" && id == "all" && *expected == stale),
            "{err}"
        );
        assert_eq!(totals("other").await, None, "rolled back with the rest");
        assert_eq!(totals("all").await.map(|(_, v)| v), Some(1));
        assert_eq!(segment_checkpoint(&store, handler, 0).await, first.position);
    }

    // A claim lost to another worker writes no view either.
    store.release(&claim).await.unwrap();
    let other = take(&store, handler, &Owner::current(), Duration::from_secs(30)).await;
    let err = settle(second.clone(), vec![totals_write("all", 2, Some(1), 2)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert_eq!(totals("all").await.map(|(_, v)| v), Some(1));

    // Built on the stored version: committed with the checkpoint.
    let done = Record::Done;
    let views = [totals_write("all", 2, Some(1), 2)];
    let settled = Settlement::New {
        event: &second,
        record: &done,
        views: &views,
        timers: &[],
    };
    store.settle(&other, settled).await.unwrap();
    assert_eq!(
        totals("all").await,
        Some((serde_json::json!({ "n": 2 }), 2))
    );
    assert_eq!(
        segment_checkpoint(&store, handler, 0).await,
        second.position
    );
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "test.tallied", aggregate = "Counter")]
struct Tallied {
    #[event(aggregate_id)]
    counter: u32,
    n: u64,
}

/// The totals over every counter: a view fed by many aggregates.
#[derive(events::sourcing::View, Serialize, Deserialize, Default, Debug, PartialEq)]
#[view(name = "tally")]
struct Tally {
    sum: u64,
}

/// The store the tally handler's "other worker" writes to, and the handler's calls so far.
static TALLY: Mutex<Option<Arc<dyn DurableStore>>> = Mutex::new(None);
static TALLY_CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[event_handler(durable, name = "test.tally", max_attempts = 1)]
async fn tally(e: &Tallied, totals: ViewKeeper<Tally>) -> Result<(), StoreError> {
    totals.modify("all", |t| t.sum += e.n).await?;
    if e.n == 100 {
        return Err(StoreError::Refused("a hundred is refused".into()));
    }
    let calls = TALLY_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if calls == 0 {
        // Meanwhile another worker adds 1000 (retrying its own conflicts with the segments
        // that race for the view on PostgreSQL).
        let store = TALLY.lock().unwrap().clone().expect("set by the test");
        let claim = take(
            &store,
            "test.tally_other",
            &Owner::current(),
            Duration::from_secs(30),
        )
        .await;
        loop {
            let stored = store.load_view("tally", "all").await?;
            let expected = stored.as_ref().map(|(_, version)| *version);
            let sum = stored.map_or(0, |(body, _)| body["sum"].as_u64().unwrap());
            let views = [ViewWrite {
                view: "tally",
                id: "all".into(),
                body: serde_json::json!({ "sum": sum + 1000 }),
                expected,
                version: expected.unwrap_or(0) + 1,
            }];
            let settled = events::store::durable::Settlement::Run {
                last: 0,
                views: &views,
                timers: &[],
            };
            match store.settle(&claim, settled).await {
                Err(StoreError::ViewConflict { .. }) => continue,
                other => break other?,
            }
        }
        store.release(&claim).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_view_changed_under_a_delivery_is_delivered_again_and_a_failed_one_writes_nothing() {
    for store in stores().await {
        a_view_changed_under_a_delivery_on(store).await;
    }
}

async fn a_view_changed_under_a_delivery_on(store: Arc<dyn DurableStore>) {
    *TALLY.lock().unwrap() = Some(store.clone());
    TALLY_CALLS.store(0, std::sync::atomic::Ordering::SeqCst);
    for (counter, n) in [(1, 1), (2, 100), (3, 2)] {
        append(&store, &Tallied { counter, n }).await;
    }
    let summary = Worker::new(&bus(), &store)
        .handlers(["test.tally"])
        .drain()
        .await
        .expect("worker runs");
    let s = &summary.handlers["test.tally"];
    let dead = dead_letters(&store, "test.tally").await;
    let errors: Vec<_> = dead.iter().map(|d| d.last_error.clone()).collect();
    // The first delivery met the other worker's write: not a failure, delivered again on it
    // (on PostgreSQL the counters' segments also race each other for the view).
    assert_eq!(s.delivered, 2, "{summary} {errors:?}");
    assert!(s.view_conflicts >= 1, "{summary}");
    // The refused event failed alone, and its staged write was discarded.
    assert_eq!(s.failed, 1, "{summary}");
    let (body, version) = store.load_view("tally", "all").await.unwrap().unwrap();
    assert_eq!(body, serde_json::json!({ "sum": 1003 }));
    assert_eq!(
        version, 3,
        "the other worker's write, then one per delivered event"
    );
    assert!(TALLY_CALLS.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[event_handler(name = "test.keeper_inline")]
async fn keeper_inline(_: &Tallied, _: ViewKeeper<Tally>) {}

#[tokio::test]
async fn a_view_keeper_outside_a_durable_delivery_fails_and_says_why() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().store(store).build().unwrap();
    let report = bus.dispatch(&Tallied { counter: 1, n: 1 }).await.unwrap();
    let failure = report
        .failures()
        .first()
        .expect("the inline handler failed");
    assert!(
        failure
            .to_string()
            .contains("is given to durable handlers while a worker delivers"),
        "{failure}"
    );
}

/// Totals kept by a batch handler.
#[derive(events::sourcing::View, Serialize, Deserialize, Default, Debug, PartialEq)]
#[view(name = "batch_tally")]
struct BatchTally {
    sum: u64,
    events: u64,
}

#[event_handler(durable, name = "test.batch_tally")]
async fn batch_tally(batch: &[Tallied], totals: ViewKeeper<BatchTally>) -> Result<(), StoreError> {
    for e in batch {
        totals
            .modify("all", |t| {
                t.sum += e.n;
                t.events += 1;
            })
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_batch_handler_stages_its_run_of_view_writes_into_one_settle() {
    for store in stores().await {
        a_batch_handler_stages_its_run_of_view_writes_on(store).await;
    }
}

async fn a_batch_handler_stages_its_run_of_view_writes_on(store: Arc<dyn DurableStore>) {
    for (counter, n) in [(1, 1), (2, 2), (3, 3), (1, 4)] {
        append(&store, &Tallied { counter, n }).await;
    }
    let summary = drain(&bus(), &store, "test.batch_tally").await;
    let s = &summary.handlers["test.batch_tally"];
    assert_eq!((s.delivered, s.failed), (4, 0), "{summary}");
    let (body, version) = store
        .load_view("batch_tally", "all")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, serde_json::json!({ "sum": 10, "events": 4 }));
    assert_eq!(version, 4, "one version per event, whatever the runs");
}
