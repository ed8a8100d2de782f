//! The gap guarantee under concurrent, late-committing and rolled-back appends, and wake-ups.

use super::*;

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
