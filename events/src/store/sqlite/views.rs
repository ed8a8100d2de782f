//! The views table (`events_views`) on SQLite: one row per (view, id), its JSON body and its
//! version. Read by the view repository and a durable handler's view keeper; written by the
//! repository, or in a settle transaction with the checkpoint (the keeper's staged writes).

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::backend;
use crate::store::durable::ViewWrite;
use crate::store::StoreError;

/// The body and version of view `view`'s `id`, if it was ever saved.
pub(crate) fn load_view(
    conn: &Connection,
    view: &str,
    id: &str,
) -> Result<Option<(serde_json::Value, u64)>, StoreError> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT body, version FROM events_views WHERE view = ?1 AND id = ?2",
            params![view, id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    row.map(|(body, version)| {
        let body = serde_json::from_str(&body).map_err(|source| StoreError::Decode {
            position: 0,
            name: format!("view `{view}` of `{id}`"),
            source,
        })?;
        Ok((body, version as u64))
    })
    .transpose()
}

/// Saves view `view`'s `id` at `version`, whatever it held.
pub(crate) fn save_view(
    tx: &Transaction<'_>,
    view: &str,
    id: &str,
    body: &serde_json::Value,
    version: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events_views (view, id, version, body) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (view, id) DO UPDATE SET version = excluded.version, body = excluded.body",
        params![view, id, version as i64, body.to_string()],
    )
    .map_err(backend)?;
    Ok(())
}

/// Deletes every stored view of `view`; returns how many.
pub(crate) fn clear_views(tx: &Transaction<'_>, view: &str) -> Result<u64, StoreError> {
    tx.execute("DELETE FROM events_views WHERE view = ?1", [view])
        .map(|n| n as u64)
        .map_err(backend)
}

/// Writes staged views, each only if the stored view is still at the version it expects
/// ([`StoreError::ViewConflict`] otherwise: the caller's transaction then rolls back).
pub(crate) fn write_staged(tx: &Transaction<'_>, writes: &[ViewWrite]) -> Result<(), StoreError> {
    for write in writes {
        if !write_view(tx, write)? {
            return Err(write.conflict());
        }
    }
    Ok(())
}

/// Writes one view only if the stored view is still at the version it expects (`None`: it
/// must not exist); `Ok(false)` when it is not, and nothing was written.
pub(crate) fn write_view(tx: &Transaction<'_>, write: &ViewWrite) -> Result<bool, StoreError> {
    let body = write.body.to_string();
    let written = match write.expected {
        None => tx.execute(
            "INSERT INTO events_views (view, id, version, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (view, id) DO NOTHING",
            params![write.view, write.id, write.version as i64, body],
        ),
        Some(expected) => tx.execute(
            "UPDATE events_views SET version = ?3, body = ?4
             WHERE view = ?1 AND id = ?2 AND version = ?5",
            params![
                write.view,
                write.id,
                write.version as i64,
                body,
                expected as i64
            ],
        ),
    }
    .map_err(backend)?;
    Ok(written == 1)
}

/// Up to `limit` rows of view `view`, by id.
pub(crate) fn list_views(
    conn: &Connection,
    view: &str,
    limit: usize,
) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    let mut statement = conn
        .prepare("SELECT id, body FROM events_views WHERE view = ?1 ORDER BY id LIMIT ?2")
        .map_err(backend)?;
    let rows = statement
        .query_map(params![view, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(backend)?;
    let mut listed = Vec::new();
    for row in rows {
        let (id, body) = row.map_err(backend)?;
        let body = serde_json::from_str(&body).map_err(|source| StoreError::Decode {
            position: 0,
            name: format!("view `{view}` of `{id}`"),
            source,
        })?;
        listed.push((id, body));
    }
    Ok(listed)
}

/// Deletes view `view`'s `id`; whether it was stored.
pub(crate) fn delete_view(tx: &Transaction<'_>, view: &str, id: &str) -> Result<bool, StoreError> {
    tx.execute(
        "DELETE FROM events_views WHERE view = ?1 AND id = ?2",
        params![view, id],
    )
    .map(|n| n == 1)
    .map_err(backend)
}

/// Whether an event of the log was caused by `causation`.
pub(crate) fn caused_by(conn: &Connection, causation: uuid::Uuid) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM events_log WHERE json_extract(metadata, '$.causation_id') = ?1)",
        [causation.to_string()],
        |r| r.get(0),
    )
    .map_err(backend)
}
