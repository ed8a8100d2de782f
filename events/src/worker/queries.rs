//! The SQL of durable delivery: checkpoints, leases, pending failures, and what operators see.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::store::sqlite::{backend, from_micros, micros, SqliteStore};
use crate::store::{StoreError, StoredEvent};

/// Where a failed event stands for one handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureStatus {
    /// Will be tried again at `next_attempt_at`.
    Retrying,
    /// Out of attempts (or undecodable): waits for an operator to retry or drop it.
    Dead,
    /// Not tried yet: an earlier event of the same aggregate is retrying or dead.
    Held,
}

impl FailureStatus {
    fn as_str(self) -> &'static str {
        match self {
            FailureStatus::Retrying => "retrying",
            FailureStatus::Dead => "dead",
            FailureStatus::Held => "held",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "retrying" => FailureStatus::Retrying,
            "dead" => FailureStatus::Dead,
            _ => FailureStatus::Held,
        }
    }
}

/// One pending failure of one handler: a dead letter, a retry, or an event held back.
#[derive(Clone, Debug)]
pub struct PendingFailure {
    /// Its id, for `retry` and `drop`.
    pub id: i64,
    /// The handler.
    pub handler: String,
    /// The event's position in the log.
    pub position: u64,
    /// `type/id` of the event's aggregate.
    pub aggregate: String,
    /// Where it stands.
    pub status: FailureStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it is tried next (retrying only).
    pub next_attempt_at: Option<SystemTime>,
    /// The last error's text.
    pub last_error: Option<String>,
}

/// One handler's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerStatus {
    /// The handler.
    pub handler: String,
    /// The last position it has handled (or passed).
    pub checkpoint: u64,
    /// Events of its type after the checkpoint: its lag.
    pub lag: u64,
    /// Events waiting for a retry.
    pub retrying: u64,
    /// Dead letters.
    pub dead: u64,
    /// Events held back behind a retry or dead letter of the same aggregate.
    pub held: u64,
    /// The worker holding its lease, if the lease is live.
    pub leased_by: Option<String>,
}

pub(crate) fn aggregate_key(event: &StoredEvent) -> String {
    format!("{}/{}", event.aggregate_type, event.aggregate_id)
}

fn now() -> i64 {
    micros(SystemTime::now())
}

/// Takes or renews the handler's lease; `false` when another live worker holds it.
pub(crate) fn acquire_lease(
    store: &SqliteStore,
    handler: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let conn = store.lock();
    conn.execute(
        "INSERT OR IGNORE INTO events_checkpoints (handler) VALUES (?1)",
        [handler],
    )
    .map_err(backend)?;
    let until = now() + ttl.as_micros() as i64;
    let changed = conn
        .execute(
            "UPDATE events_checkpoints SET lease_owner = ?2, lease_until = ?3
             WHERE handler = ?1 AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_until < ?4)",
            params![handler, owner, until, now()],
        )
        .map_err(backend)?;
    Ok(changed == 1)
}

pub(crate) fn release_lease(
    store: &SqliteStore,
    handler: &str,
    owner: &str,
) -> Result<(), StoreError> {
    store
        .lock()
        .execute(
            "UPDATE events_checkpoints SET lease_owner = NULL, lease_until = 0 WHERE handler = ?1 AND lease_owner = ?2",
            params![handler, owner],
        )
        .map_err(backend)?;
    Ok(())
}

pub(crate) fn checkpoint(conn: &Connection, handler: &str) -> Result<u64, StoreError> {
    let position: Option<i64> = conn
        .query_row(
            "SELECT position FROM events_checkpoints WHERE handler = ?1",
            [handler],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    Ok(position.unwrap_or(0) as u64)
}

fn advance(tx: &Transaction<'_>, handler: &str, position: u64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events_checkpoints (handler, position, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (handler) DO UPDATE SET position = MAX(position, excluded.position), updated_at = excluded.updated_at",
        params![handler, position as i64, now()],
    )
    .map_err(backend)?;
    Ok(())
}

/// New events for a handler: after its checkpoint, of its event type.
pub(crate) fn new_events(
    store: &SqliteStore,
    handler: &str,
    event: &str,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let conn = store.lock();
    let after = checkpoint(&conn, handler)?;
    SqliteStore::read_where(
        &conn,
        "WHERE name = ?1 AND position > ?2 ORDER BY position LIMIT ?3",
        params![event, after as i64, limit as i64],
    )
}

/// The aggregates (`type/id`) that have an event pending for this handler: their later events
/// are held back.
pub(crate) fn blocked_aggregates(
    store: &SqliteStore,
    handler: &str,
) -> Result<HashSet<String>, StoreError> {
    let conn = store.lock();
    let mut stmt = conn
        .prepare_cached("SELECT DISTINCT aggregate_key FROM events_failures WHERE handler = ?1")
        .map_err(backend)?;
    let keys = stmt.query_map([handler], |r| r.get(0)).map_err(backend)?;
    keys.map(|k| k.map_err(backend)).collect()
}

/// What to record after one delivery attempt.
pub(crate) enum Settle<'a> {
    /// Delivered: forget it.
    Done,
    /// Failed: retry at the given time, after `attempts` attempts.
    Retry {
        attempts: u32,
        at: SystemTime,
        error: &'a str,
    },
    /// Failed for good.
    Dead { attempts: u32, error: &'a str },
    /// Not attempted: an earlier event of its aggregate is pending.
    Hold,
}

/// Records the outcome of a new event and moves the checkpoint past it, in one transaction: a
/// crash before the commit redelivers the event, a crash after it does not.
pub(crate) fn settle_new(
    store: &SqliteStore,
    handler: &str,
    event: &StoredEvent,
    settle: Settle<'_>,
) -> Result<(), StoreError> {
    store.write(|tx| {
        match settle {
            Settle::Done => {}
            Settle::Retry {
                attempts,
                at,
                error,
            } => insert_failure(
                tx,
                handler,
                event,
                FailureStatus::Retrying,
                attempts,
                Some(at),
                Some(error),
            )?,
            Settle::Dead { attempts, error } => insert_failure(
                tx,
                handler,
                event,
                FailureStatus::Dead,
                attempts,
                None,
                Some(error),
            )?,
            Settle::Hold => insert_failure(tx, handler, event, FailureStatus::Held, 0, None, None)?,
        }
        advance(tx, handler, event.position)
    })
}

/// Moves the checkpoint past a run of events a batch handler took in one call.
pub(crate) fn settle_run(store: &SqliteStore, handler: &str, last: u64) -> Result<(), StoreError> {
    store.write(|tx| advance(tx, handler, last))
}

fn insert_failure(
    tx: &Transaction<'_>,
    handler: &str,
    event: &StoredEvent,
    status: FailureStatus,
    attempts: u32,
    next: Option<SystemTime>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO events_failures (handler, position, aggregate_key, status, attempts, next_attempt_at, last_error, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![handler, event.position as i64, aggregate_key(event), status.as_str(), attempts, next.map(micros), error, now()],
    )
    .map_err(backend)?;
    Ok(())
}

/// Records the outcome of a pending event's attempt.
pub(crate) fn settle_pending(
    store: &SqliteStore,
    id: i64,
    settle: Settle<'_>,
) -> Result<(), StoreError> {
    let conn = store.lock();
    let result = match settle {
        Settle::Done => conn.execute("DELETE FROM events_failures WHERE id = ?1", [id]),
        Settle::Retry { attempts, at, error } => conn.execute(
            "UPDATE events_failures SET status = 'retrying', attempts = ?2, next_attempt_at = ?3, last_error = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, attempts, micros(at), error, now()],
        ),
        Settle::Dead { attempts, error } => conn.execute(
            "UPDATE events_failures SET status = 'dead', attempts = ?2, next_attempt_at = NULL, last_error = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, attempts, error, now()],
        ),
        Settle::Hold => Ok(0),
    };
    result.map_err(backend)?;
    Ok(())
}

/// The pending events that may be attempted now: the first pending event of each aggregate,
/// when it is held (its blocker is gone) or its retry is due.
pub(crate) fn due_heads(
    store: &SqliteStore,
    handler: &str,
    limit: usize,
) -> Result<Vec<(PendingFailure, StoredEvent)>, StoreError> {
    let conn = store.lock();
    let heads = select_failures(
        &conn,
        "WHERE f.handler = ?1
           AND (f.status = 'held' OR (f.status = 'retrying' AND f.next_attempt_at <= ?2))
           AND f.position = (SELECT MIN(g.position) FROM events_failures g WHERE g.handler = f.handler AND g.aggregate_key = f.aggregate_key)
         ORDER BY f.position LIMIT ?3",
        params![handler, now(), limit as i64],
    )?;
    let mut out = Vec::with_capacity(heads.len());
    for head in heads {
        let mut events =
            SqliteStore::read_where(&conn, "WHERE position = ?1", [head.position as i64])?;
        if let Some(event) = events.pop() {
            out.push((head, event));
        }
    }
    Ok(out)
}

/// When the next retry of this handler is due, if any.
pub(crate) fn next_retry(
    store: &SqliteStore,
    handler: &str,
) -> Result<Option<SystemTime>, StoreError> {
    let at: Option<i64> = store
        .lock()
        .query_row(
            "SELECT MIN(next_attempt_at) FROM events_failures WHERE handler = ?1 AND status = 'retrying'",
            [handler],
            |r| r.get(0),
        )
        .map_err(backend)?;
    Ok(at.map(from_micros))
}

fn select_failures(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PendingFailure>, StoreError> {
    let sql = format!(
        "SELECT f.id, f.handler, f.position, f.aggregate_key, f.status, f.attempts, f.next_attempt_at, f.last_error
         FROM events_failures f {filter}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(args, |r| {
            Ok(PendingFailure {
                id: r.get(0)?,
                handler: r.get(1)?,
                position: r.get::<_, i64>(2)? as u64,
                aggregate: r.get(3)?,
                status: FailureStatus::parse(&r.get::<_, String>(4)?),
                attempts: r.get(5)?,
                next_attempt_at: r.get::<_, Option<i64>>(6)?.map(from_micros),
                last_error: r.get(7)?,
            })
        })
        .map_err(backend)?;
    rows.map(|r| r.map_err(backend)).collect()
}

/// Operator queries on a store's durable delivery state.
impl SqliteStore {
    /// Every pending failure (dead letters, retries, held events), optionally of one handler.
    pub fn failures(&self, handler: Option<&str>) -> Result<Vec<PendingFailure>, StoreError> {
        let conn = self.lock();
        match handler {
            Some(h) => select_failures(
                &conn,
                "WHERE f.handler = ?1 ORDER BY f.handler, f.position",
                [h],
            ),
            None => select_failures(&conn, "ORDER BY f.handler, f.position", []),
        }
    }

    /// Dead letters only, optionally of one handler.
    pub fn dead_letters(&self, handler: Option<&str>) -> Result<Vec<PendingFailure>, StoreError> {
        Ok(self
            .failures(handler)?
            .into_iter()
            .filter(|f| f.status == FailureStatus::Dead)
            .collect())
    }

    /// Schedules dead letters for a new round of attempts now: one by id, or all (of one
    /// handler). Returns how many. Workers of this process wake at once.
    pub fn retry_dead_letters(
        &self,
        id: Option<i64>,
        handler: Option<&str>,
    ) -> Result<usize, StoreError> {
        let n = {
            let conn = self.lock();
            conn.execute(
                "UPDATE events_failures SET status = 'retrying', attempts = 0, next_attempt_at = ?1, updated_at = ?1
                 WHERE status = 'dead' AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR handler = ?3)",
                params![now(), id, handler],
            )
            .map_err(backend)?
        };
        self.appended().notify_waiters();
        Ok(n)
    }

    /// Drops a dead letter: its event is skipped for good by that handler, and the events of
    /// the same aggregate held behind it are released. Returns whether it existed.
    pub fn drop_dead_letter(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .lock()
            .execute(
                "DELETE FROM events_failures WHERE id = ?1 AND status = 'dead'",
                [id],
            )
            .map_err(backend)?;
        self.appended().notify_waiters();
        Ok(n == 1)
    }

    /// Resets a handler's checkpoint so it receives again every event after `after` (0: the
    /// whole history), and forgets its pending failures. Its lease is kept.
    pub fn reset_checkpoint(&self, handler: &str, after: u64) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.execute("DELETE FROM events_failures WHERE handler = ?1", [handler]).map_err(backend)?;
            tx.execute(
                "INSERT INTO events_checkpoints (handler, position, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (handler) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                params![handler, after as i64, now()],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    /// Progress of one handler of event `event`.
    pub fn handler_status(&self, handler: &str, event: &str) -> Result<HandlerStatus, StoreError> {
        let conn = self.lock();
        let checkpoint = checkpoint(&conn, handler)?;
        let count = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<u64, StoreError> {
            conn.query_row(sql, args, |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(backend)
        };
        let lag = count(
            "SELECT COUNT(*) FROM events_log WHERE name = ?1 AND position > ?2",
            &[&event, &(checkpoint as i64)],
        )?;
        let by_status = |status: &str| {
            count(
                "SELECT COUNT(*) FROM events_failures WHERE handler = ?1 AND status = ?2",
                &[&handler, &status],
            )
        };
        let leased_by = conn
            .query_row(
                "SELECT lease_owner FROM events_checkpoints WHERE handler = ?1 AND lease_until >= ?2",
                params![handler, now()],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map_err(backend)?
            .flatten();
        Ok(HandlerStatus {
            handler: handler.to_owned(),
            checkpoint,
            lag,
            retrying: by_status("retrying")?,
            dead: by_status("dead")?,
            held: by_status("held")?,
            leased_by,
        })
    }
}
