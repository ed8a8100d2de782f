//! The event store: migrations, optimistic concurrency, the outbox in the caller's
//! transaction, upcasting on read.

use super::*;

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
