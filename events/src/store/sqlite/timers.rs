//! The timers table (`events_timers`) on SQLite: scheduled in an outbox or settle
//! transaction, fired by a worker (the event appended to the log and the row deleted in one
//! write transaction: SQLite runs one at a time, so two workers never fire a timer twice).

use std::time::SystemTime;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use uuid::Uuid;

use super::{backend, from_micros, micros, select, SqliteStore};
use crate::store::durable::{FiredTimer, Timer, TimerCounts, TimerId, TimerTarget, TimerWrite};
use crate::store::{StoreError, StreamId};

const COLUMNS: &str = "id, due_at, owner, key, event_id, name, version, aggregate_type, aggregate_id, payload, correlation_id, causation_id, created_at";

/// Makes the timer writes in `tx`; returns how many stored timers they found or stored.
pub(crate) fn write_staged(tx: &Transaction<'_>, writes: &[TimerWrite]) -> Result<u64, StoreError> {
    let mut found = 0;
    for write in writes {
        found += match write {
            TimerWrite::Schedule(timer) => {
                if let (Some(owner), Some(key)) = (&timer.owner, &timer.key) {
                    cancel(
                        tx,
                        &TimerTarget::Key {
                            owner: owner.clone(),
                            key: key.clone(),
                        },
                    )?;
                }
                let e = &timer.event;
                tx.prepare_cached(&format!(
                    "INSERT INTO events_timers ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ))
                .and_then(|mut insert| {
                    insert.execute(params![
                        timer.id.to_string(),
                        micros(timer.due_at),
                        timer.owner,
                        timer.key,
                        e.event_id.to_string(),
                        e.name,
                        e.version,
                        e.aggregate_type,
                        e.aggregate_id,
                        e.payload.to_string(),
                        e.correlation_id.to_string(),
                        e.causation_id.map(|c| c.to_string()),
                        micros(SystemTime::now()),
                    ])
                })
                .map_err(backend)?
            }
            TimerWrite::Cancel(target) => cancel(tx, target)?,
        } as u64;
    }
    Ok(found)
}

fn cancel(tx: &Transaction<'_>, target: &TimerTarget) -> Result<usize, StoreError> {
    match target {
        TimerTarget::Id(id) => {
            tx.execute("DELETE FROM events_timers WHERE id = ?1", [id.to_string()])
        }
        TimerTarget::Key { owner, key } => tx.execute(
            "DELETE FROM events_timers WHERE owner = ?1 AND key = ?2",
            params![owner, key],
        ),
    }
    .map_err(backend)
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap_or_else(|_| Uuid::nil())
}

fn timer_row(r: &Row<'_>) -> rusqlite::Result<Timer> {
    let payload: String = r.get(9)?;
    let timer = Timer {
        id: TimerId(uuid(&r.get::<_, String>(0)?)),
        due_at: from_micros(r.get(1)?),
        owner: r.get(2)?,
        key: r.get(3)?,
        event_id: uuid(&r.get::<_, String>(4)?),
        event: r.get(5)?,
        version: r.get(6)?,
        aggregate_type: r.get(7)?,
        aggregate_id: r.get(8)?,
        // A payload that is not JSON reaches the handler as a string and dead-letters there.
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
        correlation_id: uuid(&r.get::<_, String>(10)?),
        causation_id: r.get::<_, Option<String>>(11)?.map(|c| uuid(&c)),
        created_at: from_micros(r.get(12)?),
    };
    Ok(timer)
}

/// The stored timers in due order, at most `limit`.
pub(crate) fn list(conn: &Connection, limit: Option<usize>) -> Result<Vec<Timer>, StoreError> {
    let limit = limit.map_or(-1, |n| n as i64);
    select(
        conn,
        &format!("SELECT {COLUMNS} FROM events_timers ORDER BY due_at, id LIMIT ?1"),
        [limit],
        timer_row,
    )
}

/// How many timers are stored, and due at `now`.
pub(crate) fn counts(conn: &Connection, now: SystemTime) -> Result<TimerCounts, StoreError> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(due_at <= ?1), 0), MIN(CASE WHEN due_at <= ?1 THEN due_at END), MIN(due_at)
         FROM events_timers",
        [micros(now)],
        |r| {
            Ok(TimerCounts {
                scheduled: r.get::<_, i64>(0)? as u64,
                overdue: r.get::<_, i64>(1)? as u64,
                oldest_due: r.get::<_, Option<i64>>(2)?.map(from_micros),
                next_due: r.get::<_, Option<i64>>(3)?.map(from_micros),
            })
        },
    )
    .map_err(backend)
}

/// Moves timer `id` to `due_at`; whether it was stored.
pub(crate) fn reschedule(
    tx: &Transaction<'_>,
    id: TimerId,
    due_at: SystemTime,
) -> Result<bool, StoreError> {
    tx.execute(
        "UPDATE events_timers SET due_at = ?2 WHERE id = ?1",
        params![id.to_string(), micros(due_at)],
    )
    .map(|n| n == 1)
    .map_err(backend)
}

/// Fires up to `limit` timers due at `now` in `tx`, in due order: appends each one's event at
/// the end of its stream and deletes the row. A timer whose event id the log already holds
/// (it cannot fire twice) is deleted with an error in the log.
pub(crate) fn fire(
    tx: &Transaction<'_>,
    now: SystemTime,
    limit: usize,
) -> Result<Vec<FiredTimer>, StoreError> {
    let due = select(
        tx,
        &format!(
            "SELECT {COLUMNS} FROM events_timers WHERE due_at <= ?1 ORDER BY due_at, id LIMIT ?2"
        ),
        params![micros(now), limit as i64],
        timer_row,
    )?;
    let mut fired = Vec::with_capacity(due.len());
    for timer in due {
        tx.execute(
            "DELETE FROM events_timers WHERE id = ?1",
            [timer.id.to_string()],
        )
        .map_err(backend)?;
        let already: Option<i64> = tx
            .query_row(
                "SELECT position FROM events_log WHERE event_id = ?1",
                [timer.event_id.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        let position = match already {
            Some(position) => {
                tracing::error!(timer = %timer.id, event = timer.event.as_str(), position, "timer's event is already in the log: not appended again (the timer is deleted)");
                metrics::counter!("events_timers_refired_total").increment(1);
                position as u64
            }
            None => {
                let stream = StreamId {
                    aggregate_type: &timer.aggregate_type,
                    aggregate_id: &timer.aggregate_id,
                };
                SqliteStore::append_last(tx, stream, timer.fired_event(now))?.position
            }
        };
        fired.push(FiredTimer {
            id: timer.id,
            due_at: timer.due_at,
            event: timer.event,
            position,
        });
    }
    Ok(fired)
}
