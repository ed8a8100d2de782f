//! [`DurableStore`] on SQLite: one segment per handler, so a claim is the handler's row in
//! `events_checkpoints` (its lease and fencing token) and its checkpoint is that row's
//! position.

use std::collections::HashSet;
use std::time::SystemTime;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::watch;
use uuid::Uuid;

use super::{backend, from_micros, head, micros, select, stream_version, SqliteStore};
use crate::store::durable::{
    aggregate_key, AppendAt, AppendOnce, Checkpoint, Claim, ClaimRequest, Claimed, Discarded,
    DurableStore, FailureStatus, HandlerStatus, Heartbeat, Lease, LogQuery, Member, OnReset,
    OpenCircuit, Owner, PendingFailure, Record, Rewind, SegmentId, Settlement, Unread, ViewWrite,
};
use crate::store::durable::{FiredTimer, Timer, TimerCounts, TimerId, TimerWrite};
use crate::store::{NewEvent, StoreError, StoredEvent, StoredSnapshot, StreamId, StreamVersion};

fn now() -> i64 {
    micros(SystemTime::now())
}

/// The lease on `handler` as stored, live or lapsed.
fn lease_row(conn: &Connection, handler: &str) -> Result<Option<Lease>, StoreError> {
    conn.query_row(
        "SELECT lease_owner, lease_host, lease_pid, lease_until
         FROM events_checkpoints WHERE handler = ?1 AND lease_owner IS NOT NULL",
        [handler],
        |r| {
            let worker: String = r.get(0)?;
            Ok(Lease {
                handler: handler.to_owned(),
                segment: 0,
                owner: Owner {
                    host: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    pid: r.get::<_, Option<u32>>(2)?.unwrap_or_default(),
                    worker: Uuid::parse_str(&worker).unwrap_or_else(|_| Uuid::nil()),
                },
                expires_at: from_micros(r.get(3)?),
            })
        },
    )
    .optional()
    .map_err(backend)
}

/// The live members of `handler`, oldest first; the holder of its live lease has segment 0.
fn live_members(conn: &Connection, handler: &str) -> Result<Vec<Member>, StoreError> {
    let holder = lease_row(conn, handler)?
        .filter(|lease| lease.expires_at >= SystemTime::now())
        .map(|lease| lease.owner.worker);
    let mut stmt = conn
        .prepare_cached(
            "SELECT worker, host, pid, joined_at, alive_until FROM events_members
             WHERE handler = ?1 AND alive_until >= ?2 ORDER BY joined_at, worker",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![handler, now()], |r| {
            let worker: String = r.get(0)?;
            Ok(Member {
                owner: Owner {
                    worker: Uuid::parse_str(&worker).unwrap_or_else(|_| Uuid::nil()),
                    host: r.get(1)?,
                    pid: r.get(2)?,
                },
                joined_at: from_micros(r.get(3)?),
                expires_at: from_micros(r.get(4)?),
                segments: Vec::new(),
            })
        })
        .map_err(backend)?;
    let mut members = Vec::new();
    for member in rows {
        let mut member = member.map_err(backend)?;
        if holder == Some(member.owner.worker) {
            member.segments.push(0);
        }
        members.push(member);
    }
    Ok(members)
}

/// Fails with [`StoreError::LeaseLost`] unless `claim` is the handler's current claim.
fn check_claim(conn: &Connection, claim: &Claim) -> Result<(), StoreError> {
    let current: Option<(Option<String>, i64)> = conn
        .query_row(
            "SELECT lease_owner, lease_token FROM events_checkpoints WHERE handler = ?1",
            [&claim.handler],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    let owner = claim.owner.worker.to_string();
    match current {
        Some((Some(o), token)) if o == owner && token as u64 == claim.token => Ok(()),
        _ => Err(claim.lost()),
    }
}

fn checkpoint(conn: &Connection, handler: &str) -> Result<u64, StoreError> {
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
        "UPDATE events_checkpoints SET position = MAX(position, ?2), updated_at = ?3 WHERE handler = ?1",
        params![handler, position as i64, now()],
    )
    .map_err(backend)?;
    Ok(())
}

fn insert_failure(
    tx: &Transaction<'_>,
    handler: &str,
    event: &StoredEvent,
    record: &Record,
) -> Result<(), StoreError> {
    let (status, attempts, next, error) = match record {
        Record::Done => return Ok(()),
        Record::Retry {
            attempts,
            at,
            error,
        } => (
            FailureStatus::Retrying,
            *attempts,
            Some(micros(*at)),
            Some(error),
        ),
        Record::Dead { attempts, error } => (FailureStatus::Dead, *attempts, None, Some(error)),
        // A replay reads events again: one already pending stays as it is.
        Record::Hold => (FailureStatus::Held, 0, None, None),
    };
    let verb = if *record == Record::Hold {
        "INSERT OR IGNORE"
    } else {
        "INSERT OR REPLACE"
    };
    tx.execute(
        &format!("{verb} INTO events_failures (handler, position, aggregate_key, status, attempts, next_attempt_at, last_error, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![handler, event.position as i64, aggregate_key(event), status.as_str(), attempts, next, error, now()],
    )
    .map_err(backend)?;
    Ok(())
}

fn update_failure(tx: &Transaction<'_>, id: i64, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::Done => tx.execute("DELETE FROM events_failures WHERE id = ?1", [id]),
        Record::Retry { attempts, at, error } => tx.execute(
            "UPDATE events_failures SET status = 'retrying', attempts = ?2, next_attempt_at = ?3, last_error = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, attempts, micros(*at), error, now()],
        ),
        Record::Dead { attempts, error } => tx.execute(
            "UPDATE events_failures SET status = 'dead', attempts = ?2, next_attempt_at = NULL, last_error = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, attempts, error, now()],
        ),
        Record::Hold => Ok(0),
    }
    .map_err(backend)?;
    Ok(())
}

/// The pending failures with the event's time, to narrow with a `WHERE` on `f`.
const SELECT_FAILURES: &str =
    "SELECT f.id, f.handler, f.position, f.aggregate_key, f.status, f.attempts, f.next_attempt_at, f.last_error,
            f.updated_at, (SELECT l.occurred_at FROM events_log l WHERE l.position = f.position)
     FROM events_failures f";

fn select_failures(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PendingFailure>, StoreError> {
    select(conn, &format!("{SELECT_FAILURES} {filter}"), args, |r| {
        let status: String = r.get(4)?;
        Ok(PendingFailure {
            id: r.get(0)?,
            handler: r.get(1)?,
            position: r.get::<_, i64>(2)? as u64,
            aggregate: r.get(3)?,
            // The table's CHECK constraint allows only the three names.
            status: FailureStatus::parse(&status).unwrap_or(FailureStatus::Held),
            attempts: r.get(5)?,
            next_attempt_at: r.get::<_, Option<i64>>(6)?.map(from_micros),
            last_error: r.get(7)?,
            updated_at: from_micros(r.get(8)?),
            occurred_at: from_micros(r.get::<_, Option<i64>>(9)?.unwrap_or(0)),
        })
    })
}

fn count(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<u64, StoreError> {
    conn.query_row(sql, args, |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(backend)
}

#[async_trait]
impl DurableStore for SqliteStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn segments(&self) -> u32 {
        1
    }

    async fn append_to(
        &self,
        to: AppendAt<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.transaction(|tx| {
            let at = match to {
                AppendAt::Version(at) => at,
                AppendAt::End(stream) => stream.at(stream_version(tx, stream)?),
            };
            Self::append_in(tx, at, events)
        })
    }

    async fn append_once(
        &self,
        at: StreamVersion<'_>,
        event: NewEvent,
    ) -> Result<AppendOnce, StoreError> {
        self.transaction(|tx| {
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT position FROM events_log WHERE event_id = ?1",
                    [event.event_id.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(position) = stored {
                return Ok(AppendOnce::AlreadyStored {
                    position: position as u64,
                });
            }
            let stored = Self::append_in(tx, at, vec![event])?;
            Ok(AppendOnce::Appended {
                position: stored[0].position,
            })
        })
    }

    async fn read_log(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        Self::read_where(
            &*self.try_lock()?,
            "WHERE position > ?1 ORDER BY position LIMIT ?2",
            params![after as i64, limit as i64],
        )
    }

    async fn query_log(&self, query: &LogQuery) -> Result<Vec<StoredEvent>, StoreError> {
        super::query::query_log(&*self.try_lock()?, query)
    }

    fn location(&self) -> String {
        SqliteStore::location(self)
    }

    async fn log_head(&self) -> Result<u64, StoreError> {
        head(&*self.try_lock()?)
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.wakeups.subscribe()
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Claimed, StoreError> {
        let ClaimRequest { owner, ttl, .. } = request;
        let SegmentId { handler, segment } = request.segment;
        debug_assert_eq!(segment, 0, "SQLite has one segment per handler");
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO events_checkpoints (handler) VALUES (?1)",
                [handler],
            )
            .map_err(backend)?;
            let now = now();
            let worker = owner.worker.to_string();
            if let Some(lease) = lease_row(tx, handler)? {
                if lease.owner.worker != owner.worker && micros(lease.expires_at) >= now {
                    return Ok(Claimed::HeldBy(lease));
                }
            }
            let until = now + ttl.as_micros() as i64;
            // The same owner renews with its token; anyone else takes a new one.
            tx.execute(
                "UPDATE events_checkpoints SET
                    lease_token = CASE WHEN lease_owner = ?2 THEN lease_token ELSE lease_token + 1 END,
                    circuit_until = CASE WHEN lease_owner = ?2 THEN circuit_until ELSE 0 END,
                    lease_owner = ?2, lease_host = ?3, lease_pid = ?4, lease_until = ?5
                 WHERE handler = ?1",
                params![handler, worker, owner.host, owner.pid, until],
            )
            .map_err(backend)?;
            let token: i64 = tx
                .query_row(
                    "SELECT lease_token FROM events_checkpoints WHERE handler = ?1",
                    [handler],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Ok(Claimed::Acquired(Claim {
                handler: handler.to_owned(),
                segment,
                owner: owner.clone(),
                token: token as u64,
                expires_at: from_micros(until),
            }))
        })
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.try_lock()?
            .execute(
                "UPDATE events_checkpoints SET lease_owner = NULL, lease_host = NULL, lease_pid = NULL, lease_until = 0,
                    circuit_until = 0
                 WHERE handler = ?1 AND lease_owner = ?2 AND lease_token = ?3",
                params![claim.handler, claim.owner.worker.to_string(), claim.token as i64],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn record_circuit(
        &self,
        claim: &Claim,
        open: Option<&OpenCircuit>,
    ) -> Result<(), StoreError> {
        let until = open.map_or(0, |o| micros(o.until));
        let failures = open.map_or(0, |o| o.failures);
        let updated = self
            .try_lock()?
            .execute(
                "UPDATE events_checkpoints SET circuit_until = ?4, circuit_failures = ?5
                 WHERE handler = ?1 AND lease_owner = ?2 AND lease_token = ?3",
                params![
                    claim.handler,
                    claim.owner.worker.to_string(),
                    claim.token as i64,
                    until,
                    failures
                ],
            )
            .map_err(backend)?;
        if updated == 0 {
            return Err(claim.lost());
        }
        Ok(())
    }

    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<Vec<Member>, StoreError> {
        let Heartbeat {
            handler,
            owner,
            ttl,
        } = beat;
        self.write(|tx| {
            let now = now();
            tx.execute(
                "INSERT INTO events_members (handler, worker, host, pid, joined_at, alive_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (handler, worker) DO UPDATE SET
                    alive_until = excluded.alive_until,
                    joined_at = CASE WHEN alive_until < ?5 THEN ?5 ELSE joined_at END",
                params![
                    handler,
                    owner.worker.to_string(),
                    owner.host,
                    owner.pid,
                    now,
                    now + ttl.as_micros() as i64
                ],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM events_members WHERE handler = ?1 AND alive_until < ?2",
                params![handler, now],
            )
            .map_err(backend)?;
            live_members(tx, handler)
        })
    }

    async fn leave(&self, handler: &str, owner: &Owner) -> Result<(), StoreError> {
        self.try_lock()?
            .execute(
                "DELETE FROM events_members WHERE handler = ?1 AND worker = ?2",
                params![handler, owner.worker.to_string()],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn new_events(&self, unread: Unread<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.try_lock()?;
        let after = checkpoint(&conn, &unread.claim.handler)?;
        let names = serde_json::to_string(unread.names).expect("names serialize");
        Self::read_where(
            &conn,
            "WHERE name IN (SELECT value FROM json_each(?1)) AND position > ?2
             ORDER BY position LIMIT ?3",
            params![names, after as i64, unread.limit as i64],
        )
    }

    async fn blocked_aggregates(&self, claim: &Claim) -> Result<HashSet<String>, StoreError> {
        let keys = select(
            &*self.try_lock()?,
            "SELECT DISTINCT aggregate_key FROM events_failures WHERE handler = ?1",
            [&claim.handler],
            |r| r.get(0),
        )?;
        Ok(keys.into_iter().collect())
    }

    async fn due_pending(
        &self,
        claim: &Claim,
        limit: usize,
    ) -> Result<Vec<(PendingFailure, StoredEvent)>, StoreError> {
        let conn = self.try_lock()?;
        let heads = select_failures(
            &conn,
            "WHERE f.handler = ?1
               AND (f.status = 'held' OR (f.status = 'retrying' AND f.next_attempt_at <= ?2))
               AND f.position = (SELECT MIN(g.position) FROM events_failures g WHERE g.handler = f.handler AND g.aggregate_key = f.aggregate_key)
             ORDER BY f.position LIMIT ?3",
            params![claim.handler, now(), limit as i64],
        )?;
        let mut out = Vec::with_capacity(heads.len());
        for head in heads {
            let mut events =
                Self::read_where(&conn, "WHERE position = ?1", [head.position as i64])?;
            if let Some(event) = events.pop() {
                out.push((head, event));
            }
        }
        Ok(out)
    }

    async fn next_retry(&self, claim: &Claim) -> Result<Option<SystemTime>, StoreError> {
        let at: Option<i64> = self
            .try_lock()?
            .query_row(
                "SELECT MIN(next_attempt_at) FROM events_failures WHERE handler = ?1 AND status = 'retrying'",
                [&claim.handler],
                |r| r.get(0),
            )
            .map_err(backend)?;
        Ok(at.map(from_micros))
    }

    async fn settle(&self, claim: &Claim, settlement: Settlement<'_>) -> Result<(), StoreError> {
        // Timers it schedules wake this process's worker, which looks at the next due time.
        let wake = !settlement.timers().is_empty();
        let settled = self.write(|tx| {
            check_claim(tx, claim)?;
            super::views::write_staged(tx, settlement.views())?;
            super::timers::write_staged(tx, settlement.timers())?;
            match settlement {
                Settlement::New { event, record, .. } => {
                    insert_failure(tx, &claim.handler, event, record)?;
                    advance(tx, &claim.handler, event.position)
                }
                Settlement::Run { last, .. } => advance(tx, &claim.handler, last),
                Settlement::Pending { id, record, .. } => update_failure(tx, id, record),
            }
        });
        if settled.is_ok() && wake {
            self.wake();
        }
        settled
    }

    async fn load_view(
        &self,
        view: &str,
        id: &str,
    ) -> Result<Option<(serde_json::Value, u64)>, StoreError> {
        super::views::load_view(&*self.try_lock()?, view, id)
    }

    async fn reset_checkpoint(
        &self,
        claim: &Claim,
        rewind: Rewind,
    ) -> Result<Discarded, StoreError> {
        let discarded = self.write(|tx| {
            check_claim(tx, claim)?;
            let head = head(tx)?;
            rewind.check(head)?;
            let mut discarded = Discarded::default();
            if rewind.failures == OnReset::DiscardFailures {
                let by = |status: &str| {
                    count(
                        tx,
                        "SELECT COUNT(*) FROM events_failures WHERE handler = ?1 AND status = ?2",
                        params![claim.handler, status],
                    )
                };
                discarded = Discarded {
                    dead: by("dead")?,
                    retrying: by("retrying")?,
                    held: by("held")?,
                };
                tx.execute(
                    "DELETE FROM events_failures WHERE handler = ?1",
                    [&claim.handler],
                )
                .map_err(backend)?;
            }
            tx.execute(
                "UPDATE events_checkpoints SET position = MIN(position, ?2), updated_at = ?3 WHERE handler = ?1",
                params![claim.handler, rewind.after as i64, now()],
            )
            .map_err(backend)?;
            Ok(discarded)
        })?;
        self.wake();
        Ok(discarded)
    }

    async fn fire_timers(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<FiredTimer>, StoreError> {
        let fired = self.write(|tx| super::timers::fire(tx, now, limit))?;
        if !fired.is_empty() {
            self.wake();
        }
        Ok(fired)
    }

    async fn list_timers(&self, limit: Option<usize>) -> Result<Vec<Timer>, StoreError> {
        super::timers::list(&*self.try_lock()?, limit)
    }

    async fn timer_counts(&self, now: SystemTime) -> Result<TimerCounts, StoreError> {
        super::timers::counts(&*self.try_lock()?, now)
    }

    async fn write_timers(&self, writes: &[TimerWrite]) -> Result<u64, StoreError> {
        self.transaction(|tx| super::timers::write_staged(tx, writes))
    }

    async fn reschedule_timer(&self, id: TimerId, due_at: SystemTime) -> Result<bool, StoreError> {
        self.transaction(|tx| super::timers::reschedule(tx, id, due_at))
    }

    async fn failures(&self, handler: Option<&str>) -> Result<Vec<PendingFailure>, StoreError> {
        select_failures(
            &*self.try_lock()?,
            "WHERE ?1 IS NULL OR f.handler = ?1 ORDER BY f.handler, f.position",
            [handler],
        )
    }

    async fn retry_dead_letters(
        &self,
        id: Option<i64>,
        handler: Option<&str>,
    ) -> Result<usize, StoreError> {
        let n = self
            .try_lock()?
            .execute(
                "UPDATE events_failures SET status = 'retrying', attempts = 0, next_attempt_at = ?1, updated_at = ?1
                 WHERE status = 'dead' AND (?2 IS NULL OR id = ?2) AND (?3 IS NULL OR handler = ?3)",
                params![now(), id, handler],
            )
            .map_err(backend)?;
        self.wake();
        Ok(n)
    }

    async fn drop_dead_letter(&self, id: i64) -> Result<bool, StoreError> {
        let n = self
            .try_lock()?
            .execute(
                "DELETE FROM events_failures WHERE id = ?1 AND status = 'dead'",
                [id],
            )
            .map_err(backend)?;
        self.wake();
        Ok(n == 1)
    }

    async fn status(&self, handler: &str, event: &str) -> Result<HandlerStatus, StoreError> {
        let conn = self.try_lock()?;
        let checkpoint = checkpoint(&conn, handler)?;
        let lag = count(
            &conn,
            "SELECT COUNT(*) FROM events_log WHERE name = ?1 AND position > ?2",
            params![event, checkpoint as i64],
        )?;
        let lag_since: Option<i64> = conn
            .query_row(
                "SELECT occurred_at FROM events_log WHERE name = ?1 AND position > ?2 ORDER BY position LIMIT 1",
                params![event, checkpoint as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        let by_status = |status: &str| {
            count(
                &conn,
                "SELECT COUNT(*) FROM events_failures WHERE handler = ?1 AND status = ?2",
                params![handler, status],
            )
        };
        let leases = lease_row(&conn, handler)?
            .filter(|lease| lease.expires_at >= SystemTime::now())
            .into_iter()
            .collect();
        let members = live_members(&conn, handler)?;
        let circuits = select(
            &conn,
            "SELECT circuit_until, circuit_failures FROM events_checkpoints
             WHERE handler = ?1 AND circuit_until > ?2",
            params![handler, now()],
            |r| {
                Ok(OpenCircuit {
                    segment: 0,
                    until: from_micros(r.get(0)?),
                    failures: r.get(1)?,
                })
            },
        )?;
        Ok(HandlerStatus {
            handler: handler.to_owned(),
            checkpoint,
            lag,
            lag_since: lag_since.map(from_micros),
            retrying: by_status("retrying")?,
            dead: by_status("dead")?,
            held: by_status("held")?,
            leases,
            members,
            circuits,
        })
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        select(
            &*self.try_lock()?,
            "SELECT handler, position FROM events_checkpoints ORDER BY handler",
            [],
            |r| {
                Ok(Checkpoint {
                    handler: r.get(0)?,
                    segment: 0,
                    position: r.get::<_, i64>(1)? as u64,
                })
            },
        )
    }

    async fn rename_checkpoint(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let exists = |handler: &str| {
                count(
                    tx,
                    "SELECT COUNT(*) FROM events_checkpoints WHERE handler = ?1",
                    [handler],
                )
                .map(|n| n > 0)
            };
            if !exists(from)? {
                return Err(StoreError::Refused(format!(
                    "there is no checkpoint named `{from}` (see `status`)"
                )));
            }
            if exists(to)? {
                return Err(StoreError::Refused(format!(
                    "a checkpoint named `{to}` already exists; reset or rename it first"
                )));
            }
            if let Some(lease) = lease_row(tx, from)? {
                if lease.expires_at >= SystemTime::now() {
                    return Err(StoreError::Refused(format!(
                        "`{from}` is being delivered by {lease}; stop that worker first"
                    )));
                }
            }
            for table in ["events_checkpoints", "events_failures"] {
                tx.execute(
                    &format!("UPDATE {table} SET handler = ?2 WHERE handler = ?1"),
                    params![from, to],
                )
                .map_err(backend)?;
            }
            Ok(())
        })
    }

    // --- the application's log: streams, snapshots, views -----------------------------------

    async fn load_stream(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        super::snapshots::read_stream_after(self, stream, after)
    }

    async fn read_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        super::snapshots::load(self, stream)
    }

    async fn write_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<(), StoreError> {
        super::snapshots::save(self, stream, snapshot).map(drop)
    }

    async fn save_view(
        &self,
        view: &str,
        id: &str,
        body: &serde_json::Value,
        version: u64,
    ) -> Result<(), StoreError> {
        self.write(|tx| super::views::save_view(tx, view, id, body, version))
    }

    async fn write_view(&self, write: &ViewWrite) -> Result<bool, StoreError> {
        self.write(|tx| super::views::write_view(tx, write))
    }

    async fn clear_views(&self, view: &str) -> Result<u64, StoreError> {
        self.write(|tx| super::views::clear_views(tx, view))
    }

    async fn list_views(
        &self,
        view: &str,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        super::views::list_views(&*self.try_lock()?, view, limit)
    }

    async fn delete_view(&self, view: &str, id: &str) -> Result<bool, StoreError> {
        self.write(|tx| super::views::delete_view(tx, view, id))
    }

    async fn caused_by(&self, causation: uuid::Uuid) -> Result<bool, StoreError> {
        super::views::caused_by(&*self.try_lock()?, causation)
    }
}
