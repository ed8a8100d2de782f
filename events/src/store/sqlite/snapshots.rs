//! Snapshots of aggregates in the SQLite store: one row per stream, and reading a stream after
//! a sequence.

use rusqlite::{params, OptionalExtension};

use super::{backend, SqliteStore};
use crate::store::{StoreError, StoredEvent, StoredSnapshot, StreamId};

pub(crate) fn read_stream_after(
    store: &SqliteStore,
    stream: StreamId<'_>,
    after: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    SqliteStore::read_where(
        &*store.try_lock()?,
        "WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND sequence > ?3 ORDER BY sequence",
        params![stream.aggregate_type, stream.aggregate_id, after as i64],
    )
}

pub(crate) fn load(
    store: &SqliteStore,
    stream: StreamId<'_>,
) -> Result<Option<StoredSnapshot>, StoreError> {
    let conn = store.try_lock()?;
    let row: Option<(u32, i64, String)> = conn
        .query_row(
            "SELECT version, sequence, state FROM events_snapshots WHERE aggregate_type = ?1 AND aggregate_id = ?2",
            params![stream.aggregate_type, stream.aggregate_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(backend)?;
    Ok(row.map(|(version, sequence, state)| StoredSnapshot {
        version,
        sequence: sequence as u64,
        // A state that is not JSON is kept as a string: it fails to decode, and the aggregate
        // is replayed from the start (with a warning), instead of failing every load.
        state: serde_json::from_str(&state).unwrap_or(serde_json::Value::String(state)),
    }))
}

pub(crate) fn save(
    store: &SqliteStore,
    stream: StreamId<'_>,
    snapshot: StoredSnapshot,
) -> Result<bool, StoreError> {
    store.write(|tx| {
        tx.execute(
            "INSERT INTO events_snapshots (aggregate_type, aggregate_id, version, sequence, state)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (aggregate_type, aggregate_id)
             DO UPDATE SET version = excluded.version, sequence = excluded.sequence, state = excluded.state",
            params![
                stream.aggregate_type,
                stream.aggregate_id,
                snapshot.version,
                snapshot.sequence as i64,
                snapshot.state.to_string()
            ],
        )
        .map_err(backend)?;
        Ok(true)
    })
}
