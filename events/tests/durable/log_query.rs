#![cfg(feature = "sqlite")]
//! What the operator CLI reads from a store, on every backend: the event log query (`log`:
//! by aggregate, correlation chain, name, position range, limit), the times of pending
//! failures (`dead-letters`: when the event occurred, when it last failed), and the store's
//! location. SQLite always; PostgreSQL when `EVENTS_POSTGRES_URL` is set.

#[cfg(feature = "postgres")]
use crate::pg;

use std::sync::Arc;
use std::time::SystemTime;

use events::store::durable::{AppendAt, DurableStore, FailureStatus, LogQuery};
use events::store::{EventMetadata, NewEvent, SqliteStore, StoreError, StreamId};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "logq.record_saved", aggregate = "Record")]
struct RecordSaved {
    #[event(aggregate_id)]
    record: u32,
}

/// Fails every delivery: one attempt, then a dead letter.
#[event_handler(durable, name = "logq.always_fails", max_attempts = 1)]
fn always_fails(_: &RecordSaved) -> Result<(), String> {
    Err("the index is down".to_owned())
}

fn saved(record: u32, metadata: EventMetadata) -> NewEvent {
    NewEvent::new(&RecordSaved { record }, metadata).unwrap()
}

async fn append(
    store: &dyn DurableStore,
    record: u32,
    metadata: EventMetadata,
) -> Result<Uuid, StoreError> {
    let id = record.to_string();
    let stream = StreamId {
        aggregate_type: "Record",
        aggregate_id: &id,
    };
    let stored = store
        .append_to(AppendAt::End(stream), vec![saved(record, metadata)])
        .await?;
    Ok(stored[0].event_id)
}

fn caused_by(root: Uuid, cause: Uuid) -> EventMetadata {
    EventMetadata {
        correlation_id: Some(root),
        causation_id: Some(cause),
        ..EventMetadata::default()
    }
}

fn positions(events: &[events::store::StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

/// The behaviour every backend must show.
async fn queries_and_failure_times(shared: Arc<dyn DurableStore>) {
    let store = shared.as_ref();
    // 1: a chain's root (record 1); 2: unrelated (record 2); 3: caused by 1 (record 2);
    // 4: caused by 3 (record 1); 5: another chain (record 1).
    let root = append(store, 1, EventMetadata::default()).await.unwrap();
    append(store, 2, EventMetadata::default()).await.unwrap();
    let third = append(store, 2, caused_by(root, root)).await.unwrap();
    append(store, 1, caused_by(root, third)).await.unwrap();
    append(store, 1, EventMetadata::default()).await.unwrap();

    let all = store.query_log(&LogQuery::default()).await.unwrap();
    assert_eq!(positions(&all), [1, 2, 3, 4, 5]);
    let query = |q: LogQuery| async move { positions(&store.query_log(&q).await.unwrap()) };
    assert_eq!(
        query(LogQuery {
            aggregate: Some(("Record".into(), "1".into())),
            ..LogQuery::default()
        })
        .await,
        [1, 4, 5]
    );
    assert_eq!(
        query(LogQuery {
            correlation: Some(root),
            ..LogQuery::default()
        })
        .await,
        [1, 3, 4],
        "the root (its id is the chain's) and every event correlated with it"
    );
    assert_eq!(
        query(LogQuery {
            name: Some("logq.record_saved".into()),
            from: 2,
            to: Some(4),
            ..LogQuery::default()
        })
        .await,
        [2, 3, 4]
    );
    assert!(query(LogQuery {
        name: Some("logq.other".into()),
        ..LogQuery::default()
    })
    .await
    .is_empty());
    assert_eq!(
        query(LogQuery {
            aggregate: Some(("Record".into(), "1".into())),
            from: 2,
            limit: Some(1),
            ..LogQuery::default()
        })
        .await,
        [4]
    );

    // A dead letter carries when its event occurred and when it last failed.
    let before = SystemTime::now();
    let bus = Bus::builder().build().unwrap();
    let summary = Worker::new(&bus, &shared)
        .handlers(["logq.always_fails"])
        .drain()
        .await
        .unwrap();
    assert_eq!(summary.handlers["logq.always_fails"].dead_lettered, 2);
    let failures = store.failures(Some("logq.always_fails")).await.unwrap();
    assert_eq!(failures.len(), 5, "{failures:?}");
    for f in &failures {
        let event = &all[f.position as usize - 1];
        assert_eq!(f.occurred_at, event.occurred_at, "{f:?}");
        assert!(f.updated_at >= before, "{f:?}");
    }
    let dead: Vec<_> = failures
        .iter()
        .filter(|f| f.status == FailureStatus::Dead)
        .map(|f| f.position)
        .collect();
    assert_eq!(dead, [1, 2], "one per aggregate; the rest are held behind");
}

#[tokio::test]
async fn sqlite_answers_log_queries_and_failure_times() {
    let dir = std::env::temp_dir().join(format!("events-log-query-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.db");
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        DurableStore::location(&store),
        format!("sqlite://{}", path.display())
    );
    queries_and_failure_times(Arc::new(store)).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_answers_log_queries_and_failure_times() {
    let Some(store) = pg::store("log_query").await else {
        return;
    };
    let location = DurableStore::location(&store);
    assert!(location.starts_with("postgres"), "{location}");
    queries_and_failure_times(Arc::new(store)).await;
}
