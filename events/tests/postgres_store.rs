#![cfg(feature = "postgres")]
//! The PostgreSQL event store against a real server: migrations, optimistic concurrency, the
//! outbox in the caller's transaction, upcasting on read, and the gap guarantee under
//! concurrent, late-committing and rolled-back appends.

#[path = "support/postgres.rs"]
mod pg;

use std::time::Duration;

use events::store::{EventMetadata, EventStore, NewEvent, PostgresStore, StoreError, StreamId};
use events::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "library.card_added", aggregate = "Library")]
struct CardAdded {
    #[event(aggregate_id)]
    library: u32,
    card: String,
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    enum LibraryEvent {
        CardAdded(CardAdded),
    }
}

fn card(library: u32, card: &str) -> NewEvent {
    NewEvent::new(
        &CardAdded {
            library,
            card: card.into(),
        },
        EventMetadata::default(),
    )
    .unwrap()
}

fn library(id: &str) -> StreamId<'_> {
    StreamId {
        aggregate_type: "Library",
        aggregate_id: id,
    }
}

fn positions(events: &[events::store::StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

#[tokio::test]
async fn migrations_apply_once_and_events_round_trip() {
    let Some(store) = pg::store("round_trip").await else {
        return;
    };
    let again = store.migrate().await.unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    assert!(again.version >= 1);

    let meta = EventMetadata::default().with_field("user", "ada");
    let first = NewEvent::new(
        &CardAdded {
            library: 1,
            card: "lotus".into(),
        },
        meta.clone(),
    )
    .unwrap();
    let stored = store
        .append(library("1").at(0), vec![first.clone(), card(1, "mox")])
        .await
        .unwrap();
    assert_eq!(positions(&stored), [1, 2]);
    store
        .append(library("2").at(0), vec![card(2, "sol")])
        .await
        .unwrap();

    let stream = store.read_stream(library("1")).await.unwrap();
    assert_eq!(stream, stored, "what was stored is what is read");
    assert_eq!(stream[0].metadata, meta);
    assert_eq!(stream[0].event_id, first.event_id);
    assert_eq!(
        stream[0].decode::<LibraryEvent>().unwrap(),
        Some(LibraryEvent::CardAdded(CardAdded {
            library: 1,
            card: "lotus".into()
        }))
    );
    assert_eq!(positions(&store.read_all(1, 10).await.unwrap()), [2, 3]);
    assert_eq!(positions(&store.read_all(0, 2).await.unwrap()), [1, 2]);
    assert_eq!(store.head().await.unwrap(), 3);
}

#[tokio::test]
async fn a_stale_expected_version_conflicts_and_writes_nothing() {
    let Some(store) = pg::store("conflict").await else {
        return;
    };
    store
        .append(library("1").at(0), vec![card(1, "lotus")])
        .await
        .unwrap();
    let err = store
        .append(library("1").at(0), vec![card(1, "mox"), card(1, "sol")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.read_stream(library("1")).await.unwrap().len(), 1);
    let next = store
        .append(library("1").at(1), vec![card(1, "mox")])
        .await
        .unwrap();
    assert_eq!(
        (next[0].position, next[0].sequence),
        (2, 2),
        "the failed append left no hole"
    );
}

#[tokio::test]
async fn concurrent_writers_on_one_stream_one_wins_per_version() {
    let Some(store) = pg::store("race_one_stream").await else {
        return;
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .append(library("1").at(0), vec![card(1, &format!("card {i}"))])
                .await
        });
    }
    let results = tasks.join_all().await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, StoreError::Conflict { actual: 1, .. })));
    assert_eq!(positions(&store.read_all(0, 10).await.unwrap()), [1]);
}

#[tokio::test]
async fn application_rows_and_their_events_commit_or_roll_back_together() {
    let Some(store) = pg::store("outbox").await else {
        return;
    };
    let mut client = store.client().await.unwrap();
    client
        .batch_execute("CREATE TABLE cards (library integer, card text)")
        .await
        .unwrap();
    for (version, name, fail) in [(0, "lotus", false), (1, "banned", true), (1, "mox", false)] {
        let tx = client.transaction().await.unwrap();
        tx.execute("INSERT INTO cards VALUES (1, $1)", &[&name])
            .await
            .unwrap();
        PostgresStore::append_in(&tx, library("1").at(version), vec![card(1, name)])
            .await
            .unwrap();
        if fail {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
        }
    }
    let cards: Vec<String> = client
        .query("SELECT card FROM cards ORDER BY card", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cards, ["lotus", "mox"], "the rolled-back row is gone");
    let log = store.read_all(0, 10).await.unwrap();
    assert_eq!(positions(&log), [1, 2], "...and so is its event: no hole");
    assert_eq!(
        log[1].decode::<LibraryEvent>().unwrap(),
        Some(LibraryEvent::CardAdded(CardAdded {
            library: 1,
            card: "mox".into()
        }))
    );
}

/// The durable handler that makes a bus store `CardAdded` (run by no worker here).
#[events::event_handler(durable, name = "pg_store_test.index_card")]
fn index_card(_: &CardAdded) {}

/// The event ids the inline handler saw, in order.
static SEEN_INLINE: std::sync::Mutex<Vec<uuid::Uuid>> = std::sync::Mutex::new(Vec::new());

#[events::event_handler]
fn card_seen(_: &CardAdded, meta: events::Meta) {
    SEEN_INLINE.lock().unwrap().push(meta.event_id());
}

#[tokio::test]
async fn the_outbox_call_commits_rows_and_published_events_together_or_neither() {
    let Some(store) = pg::store("outbox_call").await else {
        return;
    };
    let bus = events::Bus::builder().store(store.clone()).build().unwrap();
    store
        .client()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE cards (library integer, card text)")
        .await
        .unwrap();
    let lotus = CardAdded {
        library: 1,
        card: "lotus".into(),
    };
    let (value, reports) = store
        .outbox(&bus, async |tx, outbox| {
            tx.execute("INSERT INTO cards VALUES (1, 'lotus')", &[])
                .await?;
            outbox.publish(lotus.clone());
            Ok::<_, events::BoxError>(7)
        })
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].is_ok(), "{:?}", reports[0]);
    let log = store.read_all(0, 10).await.unwrap();
    assert_eq!(positions(&log), [1]);
    assert_eq!(
        log[0].decode::<LibraryEvent>().unwrap(),
        Some(LibraryEvent::CardAdded(lotus))
    );
    let seen = SEEN_INLINE.lock().unwrap().clone();
    assert_eq!(
        seen,
        [log[0].event_id],
        "the inline handler ran after the commit with the stored event's id"
    );

    // A failing closure: neither its row nor its event, and no inline handler.
    let err = store
        .outbox(&bus, async |tx, outbox| {
            tx.execute("INSERT INTO cards VALUES (1, 'banned')", &[])
                .await?;
            outbox.publish(CardAdded {
                library: 1,
                card: "banned".into(),
            });
            Err::<(), events::BoxError>("declined".into())
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "declined");
    let client = store.client().await.unwrap();
    let cards: i64 = client
        .query_one("SELECT count(*) FROM cards", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cards, 1, "the failed transaction's row is gone");
    assert_eq!(store.head().await.unwrap(), 1, "...and so is its event");
    assert_eq!(SEEN_INLINE.lock().unwrap().len(), 1);

    // The store is the bus's sink outside an outbox too: `dispatch` appends.
    let report = bus
        .dispatch(&CardAdded {
            library: 2,
            card: "mox".into(),
        })
        .await;
    assert!(report.is_ok(), "{report:?}");
    let log = store.read_all(1, 10).await.unwrap();
    assert_eq!(positions(&log), [2]);
    assert_eq!((log[0].aggregate_id.as_str(), log[0].sequence), ("2", 1));
}

/// Version 2 split `name` into first and last name; version 1 rows are upcast on read.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "pg.user_registered", version = 2, aggregate = "User", upcast = user_registered_v1)]
struct UserRegistered {
    #[event(aggregate_id)]
    user: u32,
    first_name: String,
    last_name: String,
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    enum UserEvent {
        Registered(UserRegistered),
    }
}

fn user_registered_v1(
    _version: u32,
    mut payload: serde_json::Value,
) -> Result<serde_json::Value, events::BoxError> {
    let name = payload["name"]
        .as_str()
        .ok_or("v1 payload without `name`")?
        .to_owned();
    let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
    payload["first_name"] = first.into();
    payload["last_name"] = last.into();
    Ok(payload)
}

#[tokio::test]
async fn old_payloads_are_upcast_on_every_read_path() {
    let Some(store) = pg::store("upcast").await else {
        return;
    };
    let v1 = |payload: serde_json::Value| NewEvent {
        event_id: uuid::Uuid::now_v7(),
        name: "pg.user_registered".into(),
        version: 1,
        payload,
        metadata: EventMetadata::default(),
        occurred_at: std::time::SystemTime::now(),
    };
    let user = StreamId {
        aggregate_type: "User",
        aggregate_id: "1",
    };
    store
        .append(
            user.at(0),
            vec![
                v1(serde_json::json!({"user": 1, "name": "Ada Lovelace"})),
                v1(serde_json::json!({"user": 1})),
            ],
        )
        .await
        .unwrap();
    let expected = UserRegistered {
        user: 1,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    };
    let stream = store.read_stream(user).await.unwrap();
    assert_eq!(stream[0].version, 1, "stored as written");
    assert_eq!(
        stream[0].decode::<UserEvent>().unwrap(),
        Some(UserEvent::Registered(expected.clone()))
    );
    let all = store.read_all(0, 10).await.unwrap();
    assert_eq!(
        all[0].decode::<UserEvent>().unwrap(),
        Some(UserEvent::Registered(expected))
    );
    let err = all[1].decode::<UserEvent>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot upcast event `pg.user_registered` at position 2: v1 payload without `name`"
    );
}

#[tokio::test]
async fn a_store_without_its_tables_says_to_migrate() {
    let Some(url) = pg::schema_url("unmigrated").await else {
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    let err = store.read_all(0, 10).await.unwrap_err();
    assert!(
        err.to_string().contains("run the `migrate` command"),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_url_is_a_one_line_error() {
    let err = PostgresStore::connect("postgres://host:notaport/db")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("invalid PostgreSQL URL"), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

// --- the gap guarantee -------------------------------------------------------------------------

/// Waits until some backend is blocked by the backend `pid`, or until `other` finished (a
/// design that let it through would be caught by the assertions that follow).
async fn until_blocked_by<T>(store: &PostgresStore, pid: i32, other: &tokio::task::JoinHandle<T>) {
    let client = store.client().await.unwrap();
    while !other.is_finished() {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                &[&pid],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Transaction A appends and stays open; B appends meanwhile. B waits for A's counter lock, a
/// reader sees nothing, then A ends: on commit A is at 1 and B at 2; on rollback B takes 1.
async fn late_commit(test: &str, commit_a: bool) {
    let Some(store) = pg::store(test).await else {
        return;
    };
    let mut a_client = store.client().await.unwrap();
    let a_pid: i32 = a_client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let a = a_client.transaction().await.unwrap();
    let a_stored = PostgresStore::append_in(&a, library("a").at(0), vec![card(1, "from A")])
        .await
        .unwrap();
    assert_eq!(a_stored[0].position, 1);

    let b = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(library("b").at(0), vec![card(2, "from B")])
                .await
        }
    });
    until_blocked_by(&store, a_pid, &b).await;
    assert!(!b.is_finished(), "B waits for A's position counter");
    assert!(
        store.read_all(0, 10).await.unwrap().is_empty(),
        "a reader sees neither A (open) nor B (blocked), so it cannot pass A"
    );

    let log = if commit_a {
        a.commit().await.unwrap();
        let b_stored = b.await.unwrap().unwrap();
        assert_eq!(b_stored[0].position, 2);
        store.read_all(0, 10).await.unwrap()
    } else {
        a.rollback().await.unwrap();
        let b_stored = b.await.unwrap().unwrap();
        assert_eq!(b_stored[0].position, 1, "A's position is handed out again");
        store.read_all(0, 10).await.unwrap()
    };
    let streams: Vec<(u64, &str)> = log
        .iter()
        .map(|e| (e.position, e.aggregate_id.as_str()))
        .collect();
    if commit_a {
        assert_eq!(streams, [(1, "a"), (2, "b")]);
    } else {
        assert_eq!(streams, [(1, "b")]);
    }
}

#[tokio::test]
async fn a_late_commit_is_read_before_what_committed_after_it() {
    late_commit("late_commit", true).await;
}

#[tokio::test]
async fn a_rolled_back_append_leaves_no_hole_and_the_reader_moves_on() {
    late_commit("late_rollback", false).await;
}

/// Many writers, one reader that checks every page it reads continues its checkpoint exactly:
/// what a reader sees is always a gap-free prefix of the log.
#[tokio::test]
async fn concurrent_writers_never_show_a_reader_a_gap() {
    let Some(store) = pg::store("no_gaps").await else {
        return;
    };
    const WRITERS: u64 = 6;
    const APPENDS: u64 = 40;
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.spawn(async move {
            let id = w.to_string();
            for version in 0..APPENDS {
                let batch = (0..1 + version % 3)
                    .map(|i| card(w as u32, &format!("{version}.{i}")))
                    .collect::<Vec<_>>();
                let stream = library(&id);
                let current = store.read_stream(stream).await.unwrap().len() as u64;
                store.append(stream.at(current), batch).await.unwrap();
            }
        });
    }
    let total: u64 = WRITERS * (0..APPENDS).map(|v| 1 + v % 3).sum::<u64>();
    let mut checkpoint = 0;
    loop {
        let writing = !writers.is_empty();
        while let Some(done) = writers.try_join_next() {
            done.expect("a writer failed");
        }
        let page = store.read_all(checkpoint, 64).await.unwrap();
        if page.is_empty() && !writing {
            break;
        }
        if page.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for e in page {
            assert_eq!(e.position, checkpoint + 1, "a reader never sees a gap");
            checkpoint = e.position;
        }
    }
    assert_eq!(checkpoint, total, "every event was read");
    for w in 0..WRITERS {
        let stream = store.read_stream(library(&w.to_string())).await.unwrap();
        let sequences: Vec<u64> = stream.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
        assert!(stream.windows(2).all(|p| p[0].position < p[1].position));
    }
}

// --- wake-ups ------------------------------------------------------------------------------------

/// A guard against a hang, not a speed assertion: a wake-up that never comes fails here.
const NEVER: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_append_by_another_process_wakes_a_listening_store() {
    let Some(url) = pg::schema_url("wakeup").await else {
        return;
    };
    let worker_side = PostgresStore::connect(&url).await.unwrap();
    worker_side.migrate().await.unwrap();
    // Another pool, as another process would have.
    let app_side = PostgresStore::connect(&url).await.unwrap();
    let mut wakeups = worker_side.appended().subscribe();
    // The listener announces once that it listens (anything before may have been missed).
    tokio::time::timeout(NEVER, wakeups.changed())
        .await
        .expect("the listener starts")
        .unwrap();
    wakeups.mark_unchanged();
    app_side
        .append(library("1").at(0), vec![card(1, "lotus")])
        .await
        .unwrap();
    tokio::time::timeout(NEVER, wakeups.changed())
        .await
        .expect("the append's NOTIFY wakes the other store")
        .unwrap();
}

#[tokio::test]
async fn a_transaction_of_several_appends_sends_one_notification() {
    use events::store::postgres::tokio_postgres::{AsyncMessage, NoTls};

    let Some(url) = pg::schema_url("one_notify").await else {
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let schema: String = store
        .client()
        .await
        .unwrap()
        .query_one("SELECT current_schema()", &[])
        .await
        .unwrap()
        .get(0);

    // A raw listener that records every notification until a marker arrives.
    let config: events::store::postgres::tokio_postgres::Config = url.parse().unwrap();
    let (listener, mut connection) = config.connect(NoTls).await.unwrap();
    let (tx, mut received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.channel().to_owned());
            }
        }
    });
    let channel = format!("events:{schema}");
    listener
        .batch_execute(&format!("LISTEN \"{channel}\"; LISTEN marker"))
        .await
        .unwrap();

    let mut client = store.client().await.unwrap();
    let t = client.transaction().await.unwrap();
    for (i, id) in ["1", "2", "3"].into_iter().enumerate() {
        PostgresStore::append_in(&t, library(id).at(0), vec![card(i as u32, "x")])
            .await
            .unwrap();
    }
    t.commit().await.unwrap();
    client.batch_execute("NOTIFY marker").await.unwrap();

    let mut seen = Vec::new();
    loop {
        let channel = tokio::time::timeout(NEVER, received.recv())
            .await
            .expect("the marker arrives")
            .unwrap();
        if channel == "marker" {
            break;
        }
        seen.push(channel);
    }
    assert_eq!(
        seen,
        [channel],
        "three appends, one commit, one notification"
    );
}

/// `append_once` on any backend: the second append of one event id writes nothing and says
/// where the log holds it, whatever stream and version it is offered at.
async fn append_once_keeps_one_copy_per_event_id(store: &dyn events::store::DurableStore) {
    use events::store::durable::AppendOnce;
    let lotus = card(1, "lotus");
    assert_eq!(
        store
            .append_once(library("1").at(0), lotus.clone())
            .await
            .unwrap(),
        AppendOnce::Appended { position: 1 }
    );
    for (stream, version) in [("1", 0), ("1", 1), ("elsewhere", 0)] {
        assert_eq!(
            store
                .append_once(library(stream).at(version), lotus.clone())
                .await
                .unwrap(),
            AppendOnce::AlreadyStored { position: 1 },
            "offered again at {stream}/{version}"
        );
    }
    // A new event id still meets the version check.
    let err = store
        .append_once(library("1").at(0), card(1, "mox"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { actual: 1, .. }),
        "{err}"
    );
    assert_eq!(store.log_head().await.unwrap(), 1);
}

#[tokio::test]
async fn append_once_keeps_one_copy_per_event_id_on_postgres_and_sqlite() {
    let sqlite = events::store::SqliteStore::open_in_memory().unwrap();
    append_once_keeps_one_copy_per_event_id(&sqlite).await;
    let Some(store) = pg::store("append_once").await else {
        return;
    };
    append_once_keeps_one_copy_per_event_id(&store).await;
}

/// A server that cannot be reached: the error keeps its cause and says what to check (it read
/// "error connecting to server" alone, whatever the cause).
#[tokio::test]
async fn a_connection_error_keeps_its_cause_and_says_what_to_check() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::connect("postgres://events@127.0.0.1:1/events")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("error connecting to server: "), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(err.contains("is the PostgreSQL server running"), "{err}");
}

/// Migrating into a schema that does not exist says to create it.
#[tokio::test]
async fn migrating_into_a_missing_schema_says_to_create_it() {
    let Some(url) = pg::server_url("missing_schema") else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-c%20search_path%3Dno_such_schema_here");
    let store = PostgresStore::connect(&url).await.unwrap();
    let err = store.migrate().await.unwrap_err().to_string();
    assert!(err.contains("CREATE SCHEMA"), "{err}");
}
