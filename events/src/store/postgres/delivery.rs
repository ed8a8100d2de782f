//! [`DurableStore`] on PostgreSQL: a row of `events_subscriptions` per (handler, segment) holds
//! its checkpoint and its claim; `events_failures` holds retries, dead letters and the events
//! held back behind them, each tagged with its segment.
//!
//! Claims are taken with `FOR UPDATE SKIP LOCKED`, so a worker never queues behind another
//! worker's claim or settle; a settle locks its claim's row and checks the fencing token in the
//! same transaction as the outcome and the checkpoint, so a worker that lost its claim writes
//! nothing. Lease times are the server's clock (`now()`), the same for every machine; retry
//! times are the engine's, as it computed them.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, Transaction};
use uuid::Uuid;

use super::{append_locked, backend, PostgresStore, NOTIFY};
use crate::store::durable::{
    aggregate_key, AppendAt, AppendOnce, Checkpoint, Claim, ClaimRequest, Claimed, Discarded,
    DurableStore, FailureStatus, HandlerStatus, Heartbeat, Lease, LogQuery, Member, OnReset,
    OpenCircuit, Owner, PendingFailure, Record, Rewind, SegmentId, Settlement, Unread, ViewWrite,
};
use crate::store::durable::{FiredTimer, Timer, TimerCounts, TimerId, TimerWrite};
use crate::store::{NewEvent, StoreError, StoredEvent, StoredSnapshot, StreamId, StreamVersion};

const LEASE_COLUMNS: &str = "handler, segment, owner_worker, owner_host, owner_pid, lease_until";

/// A lease from a row of [`LEASE_COLUMNS`]; `None` when nobody holds it.
fn lease(row: &Row) -> Option<Lease> {
    let worker: Option<Uuid> = row.get(2);
    Some(Lease {
        handler: row.get(0),
        segment: row.get::<_, i32>(1) as u32,
        owner: Owner {
            host: row.get::<_, Option<String>>(3).unwrap_or_default(),
            pid: row.get::<_, Option<i64>>(4).unwrap_or_default() as u32,
            worker: worker?,
        },
        expires_at: row.get::<_, Option<SystemTime>>(5)?,
    })
}

/// The live members of a handler with the segments each holds a live lease on, oldest first.
async fn live_members(
    client: &impl GenericClient,
    handler: &str,
) -> Result<Vec<Member>, StoreError> {
    let rows = client
        .query(
            "SELECT m.worker, m.host, m.pid, m.joined_at, m.alive_until,
                    COALESCE(array_agg(s.segment ORDER BY s.segment) FILTER (WHERE s.segment IS NOT NULL), '{}')
             FROM events_members m
             LEFT JOIN events_subscriptions s
               ON s.handler = m.handler AND s.owner_worker = m.worker AND s.lease_until >= now()
             WHERE m.handler = $1 AND m.alive_until >= now()
             GROUP BY m.worker, m.host, m.pid, m.joined_at, m.alive_until
             ORDER BY m.joined_at, m.worker",
            &[&handler],
        )
        .await
        .map_err(backend)?;
    Ok(rows
        .iter()
        .map(|r| Member {
            owner: Owner {
                worker: r.get(0),
                host: r.get(1),
                pid: r.get::<_, i64>(2) as u32,
            },
            joined_at: r.get(3),
            expires_at: r.get(4),
            segments: r
                .get::<_, Vec<i32>>(5)
                .into_iter()
                .map(|s| s as u32)
                .collect(),
        })
        .collect())
}

/// The row of `events_subscriptions` a claim still holds: same handler and segment, same
/// holder, same token. Its parameters are [`held_row`]'s.
const HELD_ROW: &str = "handler = $1 AND segment = $2 AND owner_worker = $3 AND token = $4";

/// The claim as the four parameters of [`HELD_ROW`].
struct HeldRow<'a> {
    handler: &'a str,
    segment: i32,
    worker: Uuid,
    token: i64,
}

fn held_row(claim: &Claim) -> HeldRow<'_> {
    HeldRow {
        handler: &claim.handler,
        segment: claim.segment as i32,
        worker: claim.owner.worker,
        token: claim.token as i64,
    }
}

impl HeldRow<'_> {
    fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.handler, &self.segment, &self.worker, &self.token]
    }
}

/// Locks the claim's row for this transaction; [`StoreError::LeaseLost`] unless the claim is
/// still the current one (same holder, same token).
async fn fence(tx: &Transaction<'_>, claim: &Claim) -> Result<(), StoreError> {
    let current = tx
        .query_opt(
            &format!("SELECT 1 FROM events_subscriptions WHERE {HELD_ROW} FOR UPDATE"),
            &held_row(claim).params(),
        )
        .await
        .map_err(backend)?;
    match current {
        Some(_) => Ok(()),
        None => Err(claim.lost()),
    }
}

/// The shortest time a worker's transaction may sit idle before the server ends it. (Before
/// the limit is set the transaction has only begun: it holds no lock and no snapshot.)
const IDLE_FLOOR: Duration = Duration::from_secs(1);

/// Makes the server end this transaction's session (rolling it back, releasing its row locks)
/// once it sits idle for `within` (at least [`IDLE_FLOOR`]): a worker frozen (SIGSTOP, a long
/// pause) or cut off (a network partition) in the middle of a claim or a settle must not keep
/// its segments' rows locked past its lease, or no other worker could take them over. The
/// worker's next statement on that session then fails, and fencing refuses whatever it would
/// have committed late.
async fn idle_limit(tx: &Transaction<'_>, within: Duration) -> Result<(), StoreError> {
    let ms = within.max(IDLE_FLOOR).as_millis();
    tx.batch_execute(&format!(
        "SET LOCAL idle_in_transaction_session_timeout = {ms}"
    ))
    .await
    .map_err(backend)
}

/// What is left of a claim's lease (the floor once it lapsed).
fn lease_left(claim: &Claim) -> Duration {
    claim
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
}

async fn advance(tx: &Transaction<'_>, claim: &Claim, position: u64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE events_subscriptions SET position = GREATEST(position, $3), updated_at = now()
         WHERE handler = $1 AND segment = $2",
        &[&claim.handler, &(claim.segment as i32), &(position as i64)],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// The columns a [`Record`] writes: status, attempts, next attempt, error.
fn record_columns(
    record: &Record,
) -> Option<(FailureStatus, i32, Option<SystemTime>, Option<&str>)> {
    match record {
        Record::Done => None,
        Record::Retry {
            attempts,
            at,
            error,
        } => Some((
            FailureStatus::Retrying,
            *attempts as i32,
            Some(*at),
            Some(error),
        )),
        Record::Dead { attempts, error } => {
            Some((FailureStatus::Dead, *attempts as i32, None, Some(error)))
        }
        Record::Hold => Some((FailureStatus::Held, 0, None, None)),
    }
}

async fn insert_failure(
    tx: &Transaction<'_>,
    claim: &Claim,
    event: &StoredEvent,
    record: &Record,
) -> Result<(), StoreError> {
    let Some((status, attempts, next, error)) = record_columns(record) else {
        return Ok(());
    };
    // A replay reads events again: one already pending stays as it is when held back.
    let on_conflict = if *record == Record::Hold {
        "DO NOTHING"
    } else {
        "DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
            next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, updated_at = now()"
    };
    tx.execute(
        &format!(
            "INSERT INTO events_failures (handler, segment, position, aggregate_key, status, attempts, next_attempt_at, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (handler, position) {on_conflict}"
        ),
        &[
            &claim.handler,
            &(claim.segment as i32),
            &(event.position as i64),
            &aggregate_key(event),
            &status.as_str(),
            &attempts,
            &next,
            &error,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

async fn update_failure(
    tx: &Transaction<'_>,
    claim: &Claim,
    id: i64,
    record: &Record,
) -> Result<(), StoreError> {
    let scope = "id = $1 AND handler = $2 AND segment = $3";
    let (handler, segment) = (&claim.handler, claim.segment as i32);
    match record_columns(record) {
        None => {
            tx.execute(
                &format!("DELETE FROM events_failures WHERE {scope}"),
                &[&id, handler, &segment],
            )
            .await
        }
        Some((FailureStatus::Held, ..)) => return Ok(()),
        Some((status, attempts, next, error)) => {
            tx.execute(
                &format!(
                    "UPDATE events_failures SET status = $4, attempts = $5, next_attempt_at = $6, last_error = $7, updated_at = now()
                     WHERE {scope}"
                ),
                &[&id, handler, &segment, &status.as_str(), &attempts, &next, &error],
            )
            .await
        }
    }
    .map_err(backend)?;
    Ok(())
}

const FAILURE_COLUMNS: &str =
    "f.id, f.handler, f.position, f.aggregate_key, f.status, f.attempts, f.next_attempt_at, f.last_error,
     f.updated_at, (SELECT l.occurred_at FROM events_log l WHERE l.position = f.position)";

fn pending_failure(row: &Row) -> PendingFailure {
    let status: String = row.get(4);
    PendingFailure {
        id: row.get(0),
        handler: row.get(1),
        position: row.get::<_, i64>(2) as u64,
        aggregate: row.get(3),
        // The table's CHECK constraint allows only the three names.
        status: FailureStatus::parse(&status).unwrap_or(FailureStatus::Held),
        attempts: row.get::<_, i32>(5) as u32,
        next_attempt_at: row.get(6),
        last_error: row.get(7),
        updated_at: row.get(8),
        // The failure's event is in the log: failures are only recorded for stored events.
        occurred_at: row
            .get::<_, Option<SystemTime>>(9)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

/// Counts a handler's pending failures by status (of one segment, or all with `None`).
async fn by_status(
    client: &impl GenericClient,
    handler: &str,
    segment: Option<u32>,
) -> Result<Discarded, StoreError> {
    let rows = client
        .query(
            "SELECT status, COUNT(*) FROM events_failures
             WHERE handler = $1 AND ($2::integer IS NULL OR segment = $2) GROUP BY status",
            &[&handler, &segment.map(|s| s as i32)],
        )
        .await
        .map_err(backend)?;
    let mut out = Discarded::default();
    for row in rows {
        let n = row.get::<_, i64>(1) as u64;
        match FailureStatus::parse(row.get(0)) {
            Some(FailureStatus::Dead) => out.dead = n,
            Some(FailureStatus::Retrying) => out.retrying = n,
            _ => out.held = n,
        }
    }
    Ok(out)
}

impl PostgresStore {
    /// Runs `f` in a transaction that also wakes the workers of every process on commit.
    async fn write_and_wake<T>(
        &self,
        f: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let out = f(&tx).await?;
        tx.execute(NOTIFY, &[]).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        self.wakeups.wake();
        Ok(out)
    }

    /// Makes sure the segment's row exists, and that every worker of the handler splits it
    /// the same way (a different split would break per-aggregate order).
    async fn subscribe(&self, tx: &Transaction<'_>, id: SegmentId<'_>) -> Result<(), StoreError> {
        let SegmentId { handler, segment } = id;
        let segments = self.segments as i32;
        tx.execute(
            "INSERT INTO events_subscriptions (handler, segment, segments) VALUES ($1, $2, $3)
             ON CONFLICT (handler, segment) DO NOTHING",
            &[&handler, &(segment as i32), &segments],
        )
        .await
        .map_err(backend)?;
        let other = tx
            .query_opt(
                "SELECT segments FROM events_subscriptions WHERE handler = $1 AND segments <> $2 LIMIT 1",
                &[&handler, &segments],
            )
            .await
            .map_err(backend)?;
        match other {
            None => Ok(()),
            Some(row) => Err(StoreError::Refused(format!(
                "handler `{handler}` is split into {} segments in this database, and this worker uses {segments}; run every worker with segments={} in its database URL",
                row.get::<_, i32>(0),
                row.get::<_, i32>(0),
            ))),
        }
    }
}

#[async_trait]
impl DurableStore for PostgresStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn segments(&self) -> u32 {
        self.segments
    }

    async fn append_to(
        &self,
        to: AppendAt<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let stored = append_locked(&tx, to, events).await?;
        tx.commit().await.map_err(backend)?;
        self.wakeups.wake();
        Ok(stored)
    }

    async fn append_once(
        &self,
        at: StreamVersion<'_>,
        event: NewEvent,
    ) -> Result<AppendOnce, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // The position counter first: every append waits for it, so the check below is final
        // until this transaction ends (append_locked takes the lock we already hold).
        tx.execute("SELECT head FROM events_head FOR UPDATE", &[])
            .await
            .map_err(backend)?;
        let stored = tx
            .query_opt(
                "SELECT position FROM events_log WHERE event_id = $1",
                &[&event.event_id],
            )
            .await
            .map_err(backend)?;
        if let Some(row) = stored {
            return Ok(AppendOnce::AlreadyStored {
                position: row.get::<_, i64>(0) as u64,
            });
        }
        let stored = append_locked(&tx, AppendAt::Version(at), vec![event]).await?;
        tx.commit().await.map_err(backend)?;
        self.wakeups.wake();
        Ok(AppendOnce::Appended {
            position: stored[0].position,
        })
    }

    async fn read_log(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        crate::store::EventStore::read_all(self, after, limit).await
    }

    async fn log_head(&self) -> Result<u64, StoreError> {
        self.head().await
    }

    async fn query_log(&self, query: &LogQuery) -> Result<Vec<StoredEvent>, StoreError> {
        super::query::query_log(self, query).await
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.wakeups.subscribe()
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Claimed, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Sent together (pipelined): the limit costs no round trip of its own, and the
        // transaction holds nothing before it is set.
        tokio::try_join!(
            idle_limit(&tx, request.ttl),
            self.subscribe(&tx, request.segment)
        )?;
        let ClaimRequest { owner, ttl, .. } = request;
        let SegmentId { handler, segment } = request.segment;
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&handler, &(segment as i32)];
        let sql = |lock: &str| {
            format!(
                "SELECT {LEASE_COLUMNS}, lease_until >= now() FROM events_subscriptions
                 WHERE handler = $1 AND segment = $2 {lock}"
            )
        };
        // Another worker claiming or settling this segment right now holds the row: skip it.
        let row = match tx
            .query_opt(&sql("FOR UPDATE SKIP LOCKED"), &key)
            .await
            .map_err(backend)?
        {
            Some(row) => row,
            None => {
                let row = tx.query_one(&sql(""), &key).await.map_err(backend)?;
                match lease(&row) {
                    // Our own claim, busy in another of our transactions: wait for it.
                    Some(l) if l.owner.worker == owner.worker => tx
                        .query_one(&sql("FOR UPDATE"), &key)
                        .await
                        .map_err(backend)?,
                    Some(l) => return Ok(Claimed::HeldBy(l)),
                    None => {
                        return Ok(Claimed::HeldBy(Lease {
                            handler: handler.to_owned(),
                            segment,
                            owner: Owner {
                                host: "(another worker, claiming now)".to_owned(),
                                pid: 0,
                                worker: Uuid::nil(),
                            },
                            expires_at: SystemTime::now() + ttl,
                        }))
                    }
                }
            }
        };
        let live: Option<bool> = row.get(6);
        if let Some(l) = lease(&row) {
            if l.owner.worker != owner.worker && live == Some(true) {
                return Ok(Claimed::HeldBy(l));
            }
        }
        // The same holder renews with its token; anyone else takes a new one.
        let taken = tx
            .query_one(
                "UPDATE events_subscriptions SET
                    token = CASE WHEN owner_worker IS NOT DISTINCT FROM $3 THEN token ELSE token + 1 END,
                    circuit_until = CASE WHEN owner_worker IS NOT DISTINCT FROM $3 THEN circuit_until END,
                    owner_worker = $3, owner_host = $4, owner_pid = $5,
                    lease_until = now() + $6 * interval '1 microsecond'
                 WHERE handler = $1 AND segment = $2
                 RETURNING token, lease_until",
                &[
                    &handler,
                    &(segment as i32),
                    &owner.worker,
                    &owner.host,
                    &i64::from(owner.pid),
                    &(ttl.as_micros() as f64),
                ],
            )
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Claimed::Acquired(Claim {
            handler: handler.to_owned(),
            segment,
            owner: owner.clone(),
            token: taken.get::<_, i64>(0) as u64,
            expires_at: taken.get(1),
        }))
    }

    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                &format!(
                    "UPDATE events_subscriptions SET owner_worker = NULL, owner_host = NULL, owner_pid = NULL, lease_until = NULL,
                        circuit_until = NULL
                     WHERE {HELD_ROW}"
                ),
                &held_row(claim).params(),
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn record_circuit(
        &self,
        claim: &Claim,
        open: Option<&OpenCircuit>,
    ) -> Result<(), StoreError> {
        let held = held_row(claim);
        let until = open.map(|o| o.until);
        let failures = open.map_or(0, |o| o.failures as i32);
        let [handler, segment, worker, token] = held.params();
        let updated = self
            .client()
            .await?
            .execute(
                &format!(
                    "UPDATE events_subscriptions SET circuit_until = $5, circuit_failures = $6
                     WHERE {HELD_ROW}"
                ),
                &[handler, segment, worker, token, &until, &failures],
            )
            .await
            .map_err(backend)?;
        if updated == 0 {
            return Err(claim.lost());
        }
        Ok(())
    }

    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<Vec<Member>, StoreError> {
        let client = self.client().await?;
        let Heartbeat {
            handler,
            owner,
            ttl,
        } = beat;
        // One statement each, no transaction: a worker that stalls here holds no lock.
        client
            .execute(
                "INSERT INTO events_members (handler, worker, host, pid, alive_until)
                 VALUES ($1, $2, $3, $4, now() + $5 * interval '1 microsecond')
                 ON CONFLICT (handler, worker) DO UPDATE SET
                    alive_until = excluded.alive_until,
                    joined_at = CASE WHEN events_members.alive_until < now() THEN now() ELSE events_members.joined_at END",
                &[
                    &handler,
                    &owner.worker,
                    &owner.host,
                    &i64::from(owner.pid),
                    &(ttl.as_micros() as f64),
                ],
            )
            .await
            .map_err(backend)?;
        client
            .execute(
                "DELETE FROM events_members WHERE handler = $1 AND alive_until < now()",
                &[&handler],
            )
            .await
            .map_err(backend)?;
        live_members(&**client, handler).await
    }

    async fn leave(&self, handler: &str, owner: &Owner) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM events_members WHERE handler = $1 AND worker = $2",
                &[&handler, &owner.worker],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn new_events(&self, unread: Unread<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let claim = unread.claim;
        Self::read_where(
            &**client,
            "WHERE name = ANY($1)
               AND position > (SELECT position FROM events_subscriptions WHERE handler = $2 AND segment = $3)
               AND ($6 OR aggregate_hash % $4 = $3)
             ORDER BY position LIMIT $5",
            &[
                &unread.names,
                &claim.handler,
                &(claim.segment as i32),
                &i64::from(self.segments),
                &(unread.limit as i64),
                &unread.whole,
            ],
        )
        .await
    }

    async fn blocked_aggregates(&self, claim: &Claim) -> Result<HashSet<String>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT aggregate_key FROM events_failures WHERE handler = $1 AND segment = $2",
                &[&claim.handler, &(claim.segment as i32)],
            )
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn due_pending(
        &self,
        claim: &Claim,
        limit: usize,
    ) -> Result<Vec<(PendingFailure, StoredEvent)>, StoreError> {
        let client = self.client().await?;
        let heads: Vec<PendingFailure> = client
            .query(
                &format!(
                    "SELECT {FAILURE_COLUMNS} FROM events_failures f
                     WHERE f.handler = $1 AND f.segment = $2
                       AND (f.status = 'held' OR (f.status = 'retrying' AND f.next_attempt_at <= $3))
                       AND f.position = (SELECT MIN(g.position) FROM events_failures g
                                         WHERE g.handler = f.handler AND g.aggregate_key = f.aggregate_key)
                     ORDER BY f.position LIMIT $4"
                ),
                &[
                    &claim.handler,
                    &(claim.segment as i32),
                    &SystemTime::now(),
                    &(limit as i64),
                ],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(pending_failure)
            .collect();
        let positions: Vec<i64> = heads.iter().map(|h| h.position as i64).collect();
        let events = Self::read_where(
            &**client,
            "WHERE position = ANY($1) ORDER BY position",
            &[&positions],
        )
        .await?;
        let mut events = events.into_iter().peekable();
        let mut out = Vec::with_capacity(heads.len());
        for head in heads {
            while events.next_if(|e| e.position < head.position).is_some() {}
            if let Some(event) = events.next_if(|e| e.position == head.position) {
                out.push((head, event));
            }
        }
        Ok(out)
    }

    async fn next_retry(&self, claim: &Claim) -> Result<Option<SystemTime>, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT MIN(next_attempt_at) FROM events_failures
                 WHERE handler = $1 AND segment = $2 AND status = 'retrying'",
                &[&claim.handler, &(claim.segment as i32)],
            )
            .await
            .map_err(backend)?;
        Ok(row.get(0))
    }

    async fn settle(&self, claim: &Claim, settlement: Settlement<'_>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Pipelined, as in `claim`.
        tokio::try_join!(idle_limit(&tx, lease_left(claim)), fence(&tx, claim))?;
        super::views::write_staged(&tx, settlement.views()).await?;
        super::timers::write_staged(&tx, settlement.timers()).await?;
        match settlement {
            Settlement::New { event, record, .. } => {
                insert_failure(&tx, claim, event, record).await?;
                advance(&tx, claim, event.position).await?;
            }
            Settlement::Run { last, .. } => advance(&tx, claim, last).await?,
            Settlement::Pending { id, record, .. } => {
                update_failure(&tx, claim, id, record).await?
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn load_view(
        &self,
        view: &str,
        id: &str,
    ) -> Result<Option<(serde_json::Value, u64)>, StoreError> {
        super::views::load_view(&**self.client().await?, view, id, "").await
    }

    async fn fire_timers(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<FiredTimer>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let fired = super::timers::fire(&tx, now, limit).await?;
        tx.commit().await.map_err(backend)?;
        if !fired.is_empty() {
            self.wakeups.wake();
        }
        Ok(fired)
    }

    async fn list_timers(&self, limit: Option<usize>) -> Result<Vec<Timer>, StoreError> {
        super::timers::list(&**self.client().await?, limit).await
    }

    async fn timer_counts(&self, now: SystemTime) -> Result<TimerCounts, StoreError> {
        super::timers::counts(&**self.client().await?, now).await
    }

    async fn write_timers(&self, writes: &[TimerWrite]) -> Result<u64, StoreError> {
        self.write_and_wake(async |tx| super::timers::write_staged(tx, writes).await)
            .await
    }

    async fn reschedule_timer(&self, id: TimerId, due_at: SystemTime) -> Result<bool, StoreError> {
        self.write_and_wake(async |tx| super::timers::reschedule(tx, id, due_at).await)
            .await
    }

    async fn reset_checkpoint(
        &self,
        claim: &Claim,
        rewind: Rewind,
    ) -> Result<Discarded, StoreError> {
        let head = self.head().await?;
        self.write_and_wake(async |tx| {
            fence(tx, claim).await?;
            rewind.check(head)?;
            let segment = claim.segment as i32;
            let mut discarded = Discarded::default();
            if rewind.failures == OnReset::DiscardFailures {
                discarded = by_status(tx, &claim.handler, Some(claim.segment)).await?;
                tx.execute(
                    "DELETE FROM events_failures WHERE handler = $1 AND segment = $2",
                    &[&claim.handler, &segment],
                )
                .await
                .map_err(backend)?;
            }
            tx.execute(
                "UPDATE events_subscriptions SET position = LEAST(position, $3), updated_at = now() WHERE handler = $1 AND segment = $2",
                &[&claim.handler, &segment, &(rewind.after as i64)],
            )
            .await
            .map_err(backend)?;
            Ok(discarded)
        })
        .await
    }

    async fn failures(&self, handler: Option<&str>) -> Result<Vec<PendingFailure>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {FAILURE_COLUMNS} FROM events_failures f
                     WHERE $1::text IS NULL OR f.handler = $1 ORDER BY f.handler, f.position"
                ),
                &[&handler],
            )
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(pending_failure).collect())
    }

    async fn retry_dead_letters(
        &self,
        id: Option<i64>,
        handler: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.write_and_wake(async |tx| {
            let n = tx
                .execute(
                    "UPDATE events_failures SET status = 'retrying', attempts = 0, next_attempt_at = $1, updated_at = now()
                     WHERE status = 'dead' AND ($2::bigint IS NULL OR id = $2) AND ($3::text IS NULL OR handler = $3)",
                    &[&SystemTime::now(), &id, &handler],
                )
                .await
                .map_err(backend)?;
            Ok(n as usize)
        })
        .await
    }

    async fn drop_dead_letter(&self, id: i64) -> Result<bool, StoreError> {
        self.write_and_wake(async |tx| {
            let n = tx
                .execute(
                    "DELETE FROM events_failures WHERE id = $1 AND status = 'dead'",
                    &[&id],
                )
                .await
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn status(&self, handler: &str, event: &str) -> Result<HandlerStatus, StoreError> {
        let client = self.client().await?;
        // Each event counts against its own segment's checkpoint. The handler's checkpoint is
        // the last position up to which every one of its events is passed: just before the
        // first event still to come, or the furthest segment when none is.
        let row = client
            .query_one(
                "WITH behind AS (
                     SELECT l.position, l.occurred_at FROM events_log l
                     WHERE l.name = $1
                       AND l.position > COALESCE((SELECT s.position FROM events_subscriptions s
                                                  WHERE s.handler = $2 AND s.segment = l.aggregate_hash % s.segments), 0))
                 SELECT (SELECT COUNT(*) FROM behind),
                        COALESCE((SELECT MIN(position) - 1 FROM behind),
                                 (SELECT MAX(position) FROM events_subscriptions WHERE handler = $2), 0),
                        (SELECT MIN(occurred_at) FROM behind)",
                &[&event, &handler],
            )
            .await
            .map_err(backend)?;
        let (lag, checkpoint) = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
        // The oldest event still to come (over every segment): the lag in time.
        let lag_since: Option<SystemTime> = row.get(2);
        let pending = by_status(&**client, handler, None).await?;
        let leases = client
            .query(
                &format!(
                    "SELECT {LEASE_COLUMNS} FROM events_subscriptions
                     WHERE handler = $1 AND owner_worker IS NOT NULL AND lease_until >= now()
                     ORDER BY segment"
                ),
                &[&handler],
            )
            .await
            .map_err(backend)?
            .iter()
            .filter_map(lease)
            .collect();
        let members = live_members(&**client, handler).await?;
        let circuits = client
            .query(
                "SELECT segment, circuit_until, circuit_failures FROM events_subscriptions
                 WHERE handler = $1 AND circuit_until > now() ORDER BY segment",
                &[&handler],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| OpenCircuit {
                segment: row.get::<_, i32>(0) as u32,
                until: row.get(1),
                failures: row.get::<_, i32>(2) as u32,
            })
            .collect();
        Ok(HandlerStatus {
            handler: handler.to_owned(),
            checkpoint,
            lag,
            lag_since,
            retrying: pending.retrying,
            dead: pending.dead,
            held: pending.held,
            leases,
            members,
            circuits,
        })
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT handler, segment, position FROM events_subscriptions ORDER BY handler, segment",
                &[],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| Checkpoint {
                handler: r.get(0),
                segment: r.get::<_, i32>(1) as u32,
                position: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    async fn migrate(&self) -> Result<String, StoreError> {
        let done = PostgresStore::migrate(self).await?;
        Ok(if done.applied.is_empty() {
            format!(
                "schema `{}` is up to date (version {})",
                done.schema, done.version
            )
        } else {
            format!(
                "schema `{}` migrated to version {}: applied {}",
                done.schema,
                done.version,
                done.applied.join(", ")
            )
        })
    }

    async fn rename_checkpoint(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let rows = tx
            .query(
                &format!(
                    "SELECT {LEASE_COLUMNS}, lease_until >= now() FROM events_subscriptions
                     WHERE handler = $1 OR handler = $2 FOR UPDATE"
                ),
                &[&from, &to],
            )
            .await
            .map_err(backend)?;
        let named = |name: &str| rows.iter().any(|r| r.get::<_, String>(0) == name);
        if !named(from) {
            return Err(StoreError::Refused(format!(
                "there is no checkpoint named `{from}` (see `status`)"
            )));
        }
        if named(to) {
            return Err(StoreError::Refused(format!(
                "a checkpoint named `{to}` already exists; reset or rename it first"
            )));
        }
        let live = rows
            .iter()
            .filter(|r| r.get::<_, Option<bool>>(6) == Some(true))
            .find_map(lease);
        if let Some(lease) = live {
            return Err(StoreError::Refused(format!(
                "`{from}` is being delivered by {lease}; stop that worker first"
            )));
        }
        for table in ["events_subscriptions", "events_failures"] {
            tx.execute(
                &format!("UPDATE {table} SET handler = $2 WHERE handler = $1"),
                &[&from, &to],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    // --- the application's log: streams, snapshots, views -----------------------------------

    async fn load_stream(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        super::snapshots::read_stream_after(self, stream, after).await
    }

    async fn read_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        super::snapshots::load(self, stream).await
    }

    async fn write_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<(), StoreError> {
        super::snapshots::save(self, stream, snapshot).await
    }

    async fn save_view(
        &self,
        view: &str,
        id: &str,
        body: &serde_json::Value,
        version: u64,
    ) -> Result<(), StoreError> {
        super::views::save_view(&**self.client().await?, view, id, body, version).await
    }

    async fn write_view(&self, write: &ViewWrite) -> Result<bool, StoreError> {
        super::views::write_view(&**self.client().await?, write).await
    }

    async fn clear_views(&self, view: &str) -> Result<u64, StoreError> {
        super::views::clear_views(&**self.client().await?, view).await
    }

    async fn list_views(
        &self,
        view: &str,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        super::views::list_views(&**self.client().await?, view, limit).await
    }

    async fn delete_view(&self, view: &str, id: &str) -> Result<bool, StoreError> {
        super::views::delete_view(&**self.client().await?, view, id).await
    }

    async fn caused_by(&self, causation: Uuid) -> Result<bool, StoreError> {
        super::views::caused_by(&**self.client().await?, causation).await
    }
}
