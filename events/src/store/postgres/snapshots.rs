//! Snapshots of aggregates on PostgreSQL (`events_snapshots`, migration 5): one row per
//! stream, and reading a stream after a sequence.

use super::{backend, PostgresStore};
use crate::store::{StoreError, StoredEvent, StoredSnapshot, StreamId};

/// The events of `stream` with a sequence greater than `after`, in order.
pub(crate) async fn read_stream_after(
    store: &PostgresStore,
    stream: StreamId<'_>,
    after: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let client = store.client().await?;
    PostgresStore::read_where(
        &**client,
        "WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 ORDER BY sequence",
        &[
            &stream.aggregate_type,
            &stream.aggregate_id,
            &(after as i64),
        ],
    )
    .await
}

/// The stream's snapshot, if one was saved.
pub(crate) async fn load(
    store: &PostgresStore,
    stream: StreamId<'_>,
) -> Result<Option<StoredSnapshot>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT version, sequence, state FROM events_snapshots
             WHERE aggregate_type = $1 AND aggregate_id = $2",
            &[&stream.aggregate_type, &stream.aggregate_id],
        )
        .await
        .map_err(backend)?;
    Ok(row.map(|row| StoredSnapshot {
        // A version out of range can be no current one: it is ignored like any other.
        version: u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX),
        sequence: row.get::<_, i64>(1) as u64,
        state: row.get(2),
    }))
}

/// Replaces the stream's snapshot.
pub(crate) async fn save(
    store: &PostgresStore,
    stream: StreamId<'_>,
    snapshot: StoredSnapshot,
) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO events_snapshots (aggregate_type, aggregate_id, version, sequence, state)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (aggregate_type, aggregate_id)
             DO UPDATE SET version = excluded.version, sequence = excluded.sequence, state = excluded.state",
            &[
                &stream.aggregate_type,
                &stream.aggregate_id,
                &i64::from(snapshot.version),
                &(snapshot.sequence as i64),
                &snapshot.state,
            ],
        )
        .await
        .map_err(backend)?;
    Ok(())
}
