//! SQLite's own API: the transactional outbox with the application's rows, and two writers
//! racing on one stream.

use super::delivery::CardAdded;
use super::*;

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
