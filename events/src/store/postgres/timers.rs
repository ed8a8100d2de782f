//! The timers table (`events_timers`, migration 8) on PostgreSQL: scheduled in an outbox or
//! settle transaction, fired by a worker. Firing takes a per-schema advisory lock (one worker
//! fires at a time, so timers fire in due order; another worker skips instead of waiting) and
//! the due rows `FOR UPDATE SKIP LOCKED` (a row a transaction is cancelling or re-scheduling
//! is left to the next round), then appends their events and deletes the rows in the same
//! transaction: a timer fires once however many workers race.

use std::collections::HashMap;
use std::time::SystemTime;

use tokio_postgres::{GenericClient, Row, Transaction};
use uuid::Uuid;

use super::{append_at_ends, backend, NOTIFY};
use crate::store::durable::{FiredTimer, Timer, TimerCounts, TimerId, TimerTarget, TimerWrite};
use crate::store::{StoreError, StreamId};

const COLUMNS: &str = "id, due_at, owner, key, event_id, name, version, aggregate_type, aggregate_id, payload, correlation_id, causation_id, created_at";

/// Makes the timer writes in `tx` (and wakes the workers of every process when one is
/// scheduled, so they look at the next due time); returns how many stored timers they found
/// or stored.
pub(crate) async fn write_staged(
    tx: &Transaction<'_>,
    writes: &[TimerWrite],
) -> Result<u64, StoreError> {
    let mut found = 0;
    for write in writes {
        found += match write {
            TimerWrite::Schedule(timer) => {
                if let (Some(owner), Some(key)) = (&timer.owner, &timer.key) {
                    let target = TimerTarget::Key {
                        owner: owner.clone(),
                        key: key.clone(),
                    };
                    cancel(tx, &target).await?;
                }
                let e = &timer.event;
                tx.execute(
                    &format!("INSERT INTO events_timers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())"),
                    &[
                        &timer.id.0,
                        &timer.due_at,
                        &timer.owner,
                        &timer.key,
                        &e.event_id,
                        &e.name,
                        &(e.version as i32),
                        &e.aggregate_type,
                        &e.aggregate_id,
                        &e.payload,
                        &e.correlation_id,
                        &e.causation_id,
                    ],
                )
                .await
                .map_err(backend)?
            }
            TimerWrite::Cancel(target) => cancel(tx, target).await?,
        };
    }
    if writes.iter().any(|w| matches!(w, TimerWrite::Schedule(_))) {
        tx.execute(NOTIFY, &[]).await.map_err(backend)?;
    }
    Ok(found)
}

async fn cancel(tx: &Transaction<'_>, target: &TimerTarget) -> Result<u64, StoreError> {
    match target {
        TimerTarget::Id(id) => {
            tx.execute("DELETE FROM events_timers WHERE id = $1", &[&id.0])
                .await
        }
        TimerTarget::Key { owner, key } => {
            tx.execute(
                "DELETE FROM events_timers WHERE owner = $1 AND key = $2",
                &[owner, key],
            )
            .await
        }
    }
    .map_err(backend)
}

fn timer_row(row: &Row) -> Timer {
    Timer {
        id: TimerId(row.get(0)),
        due_at: row.get(1),
        owner: row.get(2),
        key: row.get(3),
        event_id: row.get(4),
        event: row.get(5),
        version: row.get::<_, i32>(6) as u32,
        aggregate_type: row.get(7),
        aggregate_id: row.get(8),
        payload: row.get(9),
        correlation_id: row.get(10),
        causation_id: row.get(11),
        created_at: row.get(12),
    }
}

/// The stored timers in due order, at most `limit`.
pub(crate) async fn list(
    client: &impl GenericClient,
    limit: Option<usize>,
) -> Result<Vec<Timer>, StoreError> {
    let limit = limit.map(|n| n as i64);
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM events_timers ORDER BY due_at, id LIMIT $1"),
            &[&limit],
        )
        .await
        .map_err(backend)?;
    Ok(rows.iter().map(timer_row).collect())
}

/// How many timers are stored, and due at `now`.
pub(crate) async fn counts(
    client: &impl GenericClient,
    now: SystemTime,
) -> Result<TimerCounts, StoreError> {
    let row = client
        .query_one(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE due_at <= $1), MIN(due_at) FILTER (WHERE due_at <= $1), MIN(due_at)
             FROM events_timers",
            &[&now],
        )
        .await
        .map_err(backend)?;
    Ok(TimerCounts {
        scheduled: row.get::<_, i64>(0) as u64,
        overdue: row.get::<_, i64>(1) as u64,
        oldest_due: row.get(2),
        next_due: row.get(3),
    })
}

/// Moves timer `id` to `due_at`; whether it was stored.
pub(crate) async fn reschedule(
    tx: &Transaction<'_>,
    id: TimerId,
    due_at: SystemTime,
) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE events_timers SET due_at = $2 WHERE id = $1",
            &[&id.0, &due_at],
        )
        .await
        .map_err(backend)?;
    if n == 1 {
        tx.execute(NOTIFY, &[]).await.map_err(backend)?;
    }
    Ok(n == 1)
}

/// Fires up to `limit` timers due at `now` in `tx`, in due order (nothing when another worker
/// is firing): appends each one's event at the end of its stream and deletes the rows. A
/// timer whose event id the log already holds (it cannot fire twice) is deleted with an error
/// in the log.
pub(crate) async fn fire(
    tx: &Transaction<'_>,
    now: SystemTime,
    limit: usize,
) -> Result<Vec<FiredTimer>, StoreError> {
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext('events.timers:' || current_schema()))",
            &[],
        )
        .await
        .map_err(backend)?
        .get(0);
    if !locked {
        return Ok(Vec::new());
    }
    let due: Vec<Timer> = tx
        .query(
            &format!("SELECT {COLUMNS} FROM events_timers WHERE due_at <= $1 ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"),
            &[&now, &(limit as i64)],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(timer_row)
        .collect();
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = due.iter().map(|t| t.id.0).collect();
    let event_ids: Vec<Uuid> = due.iter().map(|t| t.event_id).collect();
    let already: HashMap<Uuid, u64> = tx
        .query(
            "SELECT event_id, position FROM events_log WHERE event_id = ANY($1)",
            &[&event_ids],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
        .collect();
    let fresh: Vec<&Timer> = due
        .iter()
        .filter(|t| !already.contains_key(&t.event_id))
        .collect();
    let events = fresh
        .iter()
        .map(|t| {
            let stream = StreamId {
                aggregate_type: &t.aggregate_type,
                aggregate_id: &t.aggregate_id,
            };
            (stream, t.fired_event(now))
        })
        .collect();
    let stored = append_at_ends(tx, events).await?;
    let mut positions: HashMap<Uuid, u64> =
        stored.iter().map(|e| (e.event_id, e.position)).collect();
    for timer in due.iter().filter(|t| already.contains_key(&t.event_id)) {
        let position = already[&timer.event_id];
        tracing::error!(timer = %timer.id, event = timer.event.as_str(), position, "timer's event is already in the log: not appended again (the timer is deleted)");
        metrics::counter!("events_timers_refired_total").increment(1);
        positions.insert(timer.event_id, position);
    }
    tx.execute("DELETE FROM events_timers WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(backend)?;
    Ok(due
        .into_iter()
        .map(|t| FiredTimer {
            id: t.id,
            due_at: t.due_at,
            position: positions[&t.event_id],
            event: t.event,
        })
        .collect())
}
