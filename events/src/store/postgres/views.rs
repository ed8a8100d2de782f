//! The views table (`events_views`, migration 4) on PostgreSQL: read by the view repository
//! and a durable handler's view keeper; written by the repository, or in a settle transaction
//! with the checkpoint (the keeper's staged writes).

use tokio_postgres::{GenericClient, Transaction};

use super::backend;
use crate::store::durable::ViewWrite;
use crate::store::StoreError;

/// The body and version of view `view`'s `id`, if it was ever saved; `lock` is appended to
/// the query (`"FOR UPDATE"` keeps the row until the transaction ends).
pub(crate) async fn load_view(
    client: &impl GenericClient,
    view: &str,
    id: &str,
    lock: &str,
) -> Result<Option<(serde_json::Value, u64)>, StoreError> {
    let sql = format!("SELECT body, version FROM events_views WHERE view = $1 AND id = $2 {lock}");
    let row = client
        .query_opt(&sql, &[&view, &id])
        .await
        .map_err(backend)?;
    Ok(row.map(|row| (row.get(0), row.get::<_, i64>(1) as u64)))
}

/// Saves view `view`'s `id` at `version`, whatever it held.
pub(crate) async fn save_view(
    client: &impl GenericClient,
    view: &str,
    id: &str,
    body: &serde_json::Value,
    version: u64,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO events_views (view, id, version, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (view, id) DO UPDATE SET version = excluded.version, body = excluded.body",
            &[&view, &id, &(version as i64), body],
        )
        .await
        .map_err(backend)?;
    Ok(())
}

/// Saves view `view`'s `id` at `version` unless the stored view is already at `version` or
/// later (another writer saved it meanwhile); returns whether it was written.
pub(crate) async fn save_view_if_newer(
    client: &impl GenericClient,
    view: &str,
    id: &str,
    body: &serde_json::Value,
    version: u64,
) -> Result<bool, StoreError> {
    let written = client
        .execute(
            "INSERT INTO events_views (view, id, version, body) VALUES ($1, $2, $3, $4)
             ON CONFLICT (view, id) DO UPDATE SET version = excluded.version, body = excluded.body
             WHERE events_views.version < excluded.version",
            &[&view, &id, &(version as i64), body],
        )
        .await
        .map_err(backend)?;
    Ok(written == 1)
}

/// Deletes every stored view of `view`; returns how many.
pub(crate) async fn clear_views(
    client: &impl GenericClient,
    view: &str,
) -> Result<u64, StoreError> {
    client
        .execute("DELETE FROM events_views WHERE view = $1", &[&view])
        .await
        .map_err(backend)
}

/// Writes staged views, each only if the stored view is still at the version it expects
/// ([`StoreError::ViewConflict`] otherwise: the caller's transaction then rolls back). A
/// concurrent settle that changed the row first is waited for (row lock), then seen.
pub(crate) async fn write_staged(
    tx: &Transaction<'_>,
    writes: &[ViewWrite],
) -> Result<(), StoreError> {
    for write in writes {
        if !write_view(tx, write).await? {
            return Err(write.conflict());
        }
    }
    Ok(())
}

/// Writes one view only if the stored view is still at the version it expects (`None`: it
/// must not exist); `Ok(false)` when it is not, and nothing was written. A concurrent write
/// that changed the row first is waited for (row lock), then seen.
pub(crate) async fn write_view(
    client: &impl GenericClient,
    write: &ViewWrite,
) -> Result<bool, StoreError> {
    let version = write.version as i64;
    let written = match write.expected {
        None => {
            client
                .execute(
                    "INSERT INTO events_views (view, id, version, body) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (view, id) DO NOTHING",
                    &[&write.view, &write.id, &version, &write.body],
                )
                .await
        }
        Some(expected) => {
            client
                .execute(
                    "UPDATE events_views SET version = $3, body = $4
                     WHERE view = $1 AND id = $2 AND version = $5",
                    &[
                        &write.view,
                        &write.id,
                        &version,
                        &write.body,
                        &(expected as i64),
                    ],
                )
                .await
        }
    }
    .map_err(backend)?;
    Ok(written == 1)
}

/// Up to `limit` rows of view `view`, by id.
pub(crate) async fn list_views(
    client: &impl GenericClient,
    view: &str,
    limit: usize,
) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
    let rows = client
        .query(
            "SELECT id, body FROM events_views WHERE view = $1 ORDER BY id LIMIT $2",
            &[&view, &(limit.min(i64::MAX as usize) as i64)],
        )
        .await
        .map_err(backend)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Deletes view `view`'s `id`; whether it was stored.
pub(crate) async fn delete_view(
    client: &impl GenericClient,
    view: &str,
    id: &str,
) -> Result<bool, StoreError> {
    client
        .execute(
            "DELETE FROM events_views WHERE view = $1 AND id = $2",
            &[&view, &id],
        )
        .await
        .map(|n| n == 1)
        .map_err(backend)
}

/// Whether an event of the log was caused by `causation`.
pub(crate) async fn caused_by(
    client: &impl GenericClient,
    causation: uuid::Uuid,
) -> Result<bool, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM events_log WHERE metadata->>'causation_id' = $1)",
            &[&causation.to_string()],
        )
        .await
        .map_err(backend)?;
    Ok(row.get(0))
}
