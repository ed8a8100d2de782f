//! The PostgreSQL store: many application instances appending, many workers delivering.
//!
//! **Driver.** `tokio-postgres` (with the small `deadpool-postgres` pool) rather than sqlx: it
//! is lean (no query macros, no offline query metadata, no second runtime abstraction), speaks
//! the binary protocol with pipelining, and delivers LISTEN/NOTIFY through the connection's own
//! message stream, which is what the workers' wake-ups need. Connections are made without TLS
//! (`NoTls`): a URL that requires TLS fails to connect with the driver's error.
//!
//! **No gaps, by construction.** Positions come from a one-row counter (`events_head`). An
//! append locks that row (`SELECT .. FOR UPDATE`), checks the stream's version, bumps the
//! counter by the number of events and inserts them; the row lock is held until the caller's
//! transaction ends. Positions are therefore assigned in commit order: whoever takes the
//! counter next waits until the holder commits (its positions are then visible) or rolls back
//! (its update is undone and the same positions are handed out again). A reader that sees
//! position `N + 1` committed knows that `N` is committed too, so a checkpoint can simply be
//! "the last position handled" and no reader ever passes a position that a slower transaction
//! commits later. No timeout is involved anywhere.
//!
//! The price: appends to the whole log serialise on commit (one appending transaction at a
//! time holds the counter, so keep outbox transactions short and take the counter last).
//! Batching recovers throughput: one append of many events costs one lock, one counter update
//! and one multi-row insert.
//!
//! **Wake-ups.** Each append calls `pg_notify` once; PostgreSQL folds identical notifications
//! of one transaction, so a committing transaction sends at most one, and nothing is sent by a
//! per-row trigger. The channel is named after the connection's schema, so stores in different
//! schemas of one database do not wake each other.
//!
//! **Competing workers.** Each handler's stream is split into segments by aggregate
//! (`FNV-1a("type/id") mod N`, `N` = [`segments`](PostgresStore::with_segments), 4 by default,
//! or `segments=N` in the URL). Each (handler, segment) has one checkpoint and one claim, taken
//! with `FOR UPDATE SKIP LOCKED` and a lease; a worker settles only while its claim's fencing
//! token is current. An aggregate lives in one segment, so its order and its hold-back stay
//! within one worker at a time.
//!
//! **Schema.** The tables live in the schema the connection's `search_path` selects (set it in
//! the URL: `postgres://host/db?options=-c%20search_path%3Dshop`). [`PostgresStore::migrate`]
//! creates and upgrades them from the `.sql` files next to this module.

mod delivery;
mod migrate;
mod outbox;
mod query;
mod snapshots;
mod timers;
pub(crate) mod views;
mod wakeup;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row, Transaction};
use uuid::Uuid;

use super::durable::{AppendAt, DurableStore};
use super::{
    EventStore, NewEvent, StoreError, StoredEvent, StoredSnapshot, StreamId, StreamVersion,
};
use crate::error::BoxError;

pub use migrate::Migrated;
pub use tokio_postgres;
pub use wakeup::Wakeups;

/// Connections the pool opens at most, per store (per process).
const POOL_SIZE: usize = 16;

/// Segments per handler unless the URL or [`PostgresStore::with_segments`] says otherwise.
pub const DEFAULT_SEGMENTS: u32 = 4;

/// Wakes listeners of this schema when the transaction commits (one per transaction: identical
/// notifications of a transaction are folded).
const NOTIFY: &str = "SELECT pg_notify(left('events:' || current_schema(), 63), '')";

/// The PostgreSQL event store: a connection pool on one database and schema. Cheap to clone:
/// clones share the pool.
///
/// ```no_run
/// use events::store::{EventMetadata, EventStore, NewEvent, PostgresStore, StreamId};
/// # #[derive(events::DomainEvent, serde::Serialize)] struct Opened { owner: String }
/// # async fn run() -> Result<(), events::store::StoreError> {
/// let store = PostgresStore::connect("postgres://app@127.0.0.1/shop").await?;
/// store.migrate().await?; // once, or from the CLI's `migrate`
/// let stream = StreamId { aggregate_type: "Account", aggregate_id: "a-1" };
/// let event = NewEvent::new(&Opened { owner: "Ada".into() }, EventMetadata::default())?;
/// let stored = store.append(stream.at(0), vec![event]).await?;
/// assert_eq!(stored[0].sequence, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    segments: u32,
    config: tokio_postgres::Config,
    wakeups: Wakeups,
    /// The URL it was opened with, without its password (the `location` operators see).
    location: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("options", &self.config.get_options())
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

/// A database error with a hint when the cause is one an operator can fix.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PostgresError {
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl PostgresError {
    pub(crate) fn new(message: impl Into<String>, source: Option<BoxError>) -> Self {
        Self {
            message: message.into(),
            source,
        }
    }
}

/// Maps a driver error to a store error; a missing table says to run the migrations.
pub(crate) fn backend(err: tokio_postgres::Error) -> StoreError {
    let message = match err.as_db_error() {
        Some(db) if db.code() == &SqlState::UNDEFINED_TABLE => format!(
            "{}: the events tables are missing in this database schema; run the `migrate` command (or `PostgresStore::migrate`) first",
            db.message()
        ),
        Some(db) if db.code() == &SqlState::INVALID_SCHEMA_NAME => format!(
            "PostgreSQL: {} ({}): the schema the URL's search_path names does not exist; create it (`CREATE SCHEMA name`) or fix `options=-c search_path=..` in the URL",
            db.message(),
            db.code().code()
        ),
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => with_causes(&err),
    };
    StoreError::Backend(Box::new(PostgresError::new(message, Some(Box::new(err)))))
}

/// A client-side error with every cause it carries (`error connecting to server` alone says
/// nothing), and what to check when the server could not be reached.
fn with_causes(err: &tokio_postgres::Error) -> String {
    let mut message = format!("PostgreSQL: {err}");
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        message.push_str(&format!(": {e}"));
        cause = e.source();
    }
    if err.to_string().starts_with("error connecting") {
        message.push_str("; is the PostgreSQL server running and reachable at the URL's host and port (`scripts/servers.sh start` runs one for tests)?");
    }
    message
}

fn invalid_url(reason: String) -> StoreError {
    StoreError::Backend(Box::new(PostgresError::new(
        format!("invalid PostgreSQL URL: {reason}; expected postgres://user@host:port/database[?segments=N]"),
        None,
    )))
}

/// Takes our own `segments=N` out of the URL's query; the rest goes to the driver.
fn split_url(url: &str) -> Result<(String, Option<u32>), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    let mut segments = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("segments=") {
            Some(n) => {
                segments = Some(n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    invalid_url(format!("`segments={n}` is not a positive number"))
                })?)
            }
            None => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, segments))
}

/// The URL without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}{}", &rest[authority_end..])
        }
        _ => url.to_owned(),
    }
}

/// TCP keepalives on both ends, unless the URL sets its own: a peer that vanished (a machine
/// gone, a network partition) is noticed within about 25 s instead of the system's two hours,
/// by the client (its calls fail and the worker backs off) and by the server (it ends the
/// session, rolling back what it held). A worker's own transactions are also ended by the
/// server once idle past the lease (`idle_in_transaction_session_timeout`, see `delivery.rs`).
fn keep_alive(config: &mut tokio_postgres::Config) {
    const SYSTEM_DEFAULT_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
    if config.get_keepalives_idle() == SYSTEM_DEFAULT_IDLE {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    let options = config.get_options().unwrap_or_default();
    if !options.contains("tcp_keepalives") {
        let server =
            "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";
        let options = if options.is_empty() {
            server.to_owned()
        } else {
            format!("{options} {server}")
        };
        config.options(&options);
    }
}

fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(e) => backend(e),
        other => StoreError::Backend(Box::new(PostgresError::new(
            format!("PostgreSQL connection pool: {other}"),
            None,
        ))),
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?options=...`), checking
    /// that the server answers. `segments=N` in the query sets the segments per handler (see
    /// [`with_segments`](Self::with_segments)). Does not create tables: see
    /// [`migrate`](Self::migrate).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (url, segments) = split_url(url)?;
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| invalid_url(format!("{e}")))?;
        keep_alive(&mut config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .expect("a pool without timeouts builds");
        let store = Self {
            pool,
            segments: segments.unwrap_or(DEFAULT_SEGMENTS),
            wakeups: Wakeups::new(config.clone()),
            config,
            location: redacted(&url),
        };
        drop(store.client().await?); // fail now if the server does not answer
        Ok(store)
    }

    /// A connection from the pool, for your own transactions: open one with
    /// `client.transaction().await`, write your rows, [`append_in`](Self::append_in) it, commit.
    pub async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Splits each handler's stream into `segments` (at least 1) by aggregate, so up to that
    /// many workers share a handler. Every worker of a handler must use the same number: a
    /// claim with another number is refused while the handler has checkpoints.
    pub fn with_segments(mut self, segments: u32) -> Self {
        self.segments = segments.max(1);
        self
    }

    /// The connection settings (parsed from the URL).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The wake-ups of this store: a counter that moves each time some process commits an
    /// append.
    pub fn appended(&self) -> &Wakeups {
        &self.wakeups
    }

    /// Appends to a stream inside the caller's transaction (the transactional outbox): checks
    /// the expected version, assigns positions and sequences. Nothing is visible until the
    /// caller commits, and until then every other append waits (see the module documentation):
    /// commit soon after.
    ///
    /// ```no_run
    /// use events::store::{EventMetadata, NewEvent, PostgresStore, StreamId};
    /// # #[derive(events::DomainEvent, serde::Serialize)] struct CardAdded { card: String }
    /// # async fn run(store: PostgresStore) -> Result<(), events::BoxError> {
    /// let mut client = store.client().await?;
    /// let tx = client.transaction().await?;
    /// tx.execute("INSERT INTO cards (name) VALUES ($1)", &[&"Black Lotus"]).await?;
    /// let e = NewEvent::new(&CardAdded { card: "Black Lotus".into() }, EventMetadata::default())?;
    /// let library = StreamId { aggregate_type: "Library", aggregate_id: "1" };
    /// PostgresStore::append_in(&tx, library.at(0), vec![e]).await?;
    /// tx.commit().await?; // the card and its event, or neither
    /// # Ok(()) }
    /// ```
    pub async fn append_in(
        tx: &Transaction<'_>,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        append_locked(tx, AppendAt::Version(at), events).await
    }

    /// The highest committed position of the log (0 when empty).
    pub async fn head(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT COALESCE(MAX(position), 0) FROM events_log", &[])
            .await
            .map_err(backend)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Reads log rows with a `WHERE .. ORDER BY .. LIMIT` tail.
    pub(crate) async fn read_where(
        client: &impl tokio_postgres::GenericClient,
        filter: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT position, event_id, name, version, aggregate_type, aggregate_id, sequence, payload, metadata, occurred_at
             FROM events_log {filter}"
        );
        let rows = client.query(&sql, args).await.map_err(backend)?;
        rows.iter().map(stored_event).collect()
    }
}

/// Appends under the position counter's row lock (see the module documentation).
pub(crate) async fn append_locked(
    tx: &Transaction<'_>,
    to: AppendAt<'_>,
    events: Vec<NewEvent>,
) -> Result<Vec<StoredEvent>, StoreError> {
    // The counter first: once we hold it no other append can commit, so the version read
    // next is final. A conflict returns before anything is written.
    let head = lock_head(tx).await?;
    let stream = to.stream();
    let actual = stream_version(tx, stream).await?;
    let expected_version = to.expected().unwrap_or(actual);
    stream.at(expected_version).check(actual)?;
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let stored: Vec<StoredEvent> = (1u64..)
        .zip(events)
        .map(|(i, e)| StoredEvent {
            occurred_at: to_micros(e.occurred_at),
            ..e.stored(stream, head + i, expected_version + i)
        })
        .collect();
    insert_and_move_head(tx, &stored).await?;
    Ok(stored)
}

/// Appends events, each to the end of its own stream, in order: one hold of the position
/// counter, one read of the streams' versions and one insert, whatever their number (an
/// outbox's batch).
pub(crate) async fn append_at_ends(
    tx: &Transaction<'_>,
    events: Vec<(StreamId<'_>, NewEvent)>,
) -> Result<Vec<StoredEvent>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let head = lock_head(tx).await?;
    let mut versions = stream_versions(tx, events.iter().map(|(stream, _)| *stream)).await?;
    let stored: Vec<StoredEvent> = (1u64..)
        .zip(events)
        .map(|(i, (stream, e))| {
            let version = versions.entry(stream).or_default();
            *version += 1;
            StoredEvent {
                occurred_at: to_micros(e.occurred_at),
                ..e.stored(stream, head + i, *version)
            }
        })
        .collect();
    insert_and_move_head(tx, &stored).await?;
    Ok(stored)
}

/// Takes the position counter's row lock and returns the last position.
async fn lock_head(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let row = tx
        .query_one("SELECT head FROM events_head FOR UPDATE", &[])
        .await
        .map_err(backend)?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Inserts the events, moves the counter past the last one and notifies the workers (one
/// notification per commit: identical ones of a transaction are folded).
async fn insert_and_move_head(
    tx: &Transaction<'_>,
    stored: &[StoredEvent],
) -> Result<(), StoreError> {
    insert(tx, stored).await?;
    let last = stored.last().expect("not empty").position as i64;
    tx.execute("UPDATE events_head SET head = $1", &[&last])
        .await
        .map_err(backend)?;
    tx.execute(NOTIFY, &[]).await.map_err(backend)?;
    Ok(())
}

/// Inserts events in one statement (arrays unnested), whatever their number and streams.
async fn insert(tx: &Transaction<'_>, events: &[StoredEvent]) -> Result<(), StoreError> {
    let types: Vec<&str> = events.iter().map(|e| e.aggregate_type.as_str()).collect();
    let aggregates: Vec<&str> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
    let hashes: Vec<i64> = events
        .iter()
        .map(|e| i64::from(aggregate_hash(&e.aggregate_type, &e.aggregate_id)))
        .collect();
    let positions: Vec<i64> = events.iter().map(|e| e.position as i64).collect();
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let versions: Vec<i64> = events.iter().map(|e| i64::from(e.version)).collect();
    let sequences: Vec<i64> = events.iter().map(|e| e.sequence as i64).collect();
    let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
    let metadata: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(&e.metadata).expect("metadata serializes"))
        .collect();
    let times: Vec<SystemTime> = events.iter().map(|e| e.occurred_at).collect();
    tx.execute(
        "INSERT INTO events_log (position, event_id, name, version, aggregate_type, aggregate_id, aggregate_hash, sequence, payload, metadata, occurred_at)
         SELECT p, i, n, v, at, ai, h, s, pl, m, t
         FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::jsonb[], $10::jsonb[], $11::timestamptz[])
              AS u (p, i, n, at, ai, h, v, s, pl, m, t)",
        &[
            &positions,
            &ids,
            &names,
            &types,
            &aggregates,
            &hashes,
            &versions,
            &sequences,
            &payloads,
            &metadata,
            &times,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// `t` at the database's precision (microseconds), so what an append returns equals what is
/// read back.
fn to_micros(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_micros(d.as_micros() as u64),
        Err(_) => t,
    }
}

/// FNV-1a (32 bits) of `type/id`: stable across processes, machines and releases, so every
/// worker puts an aggregate in the same segment.
pub(crate) fn aggregate_hash(aggregate_type: &str, aggregate_id: &str) -> u32 {
    fnv1a(
        aggregate_type
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(aggregate_id.bytes()),
    )
}

fn fnv1a(bytes: impl Iterator<Item = u8>) -> u32 {
    bytes.fold(0x811c_9dc5, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The version of a stream: its last sequence (0 when empty).
async fn stream_version(tx: &Transaction<'_>, stream: StreamId<'_>) -> Result<u64, StoreError> {
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(sequence), 0) FROM events_log WHERE aggregate_type = $1 AND aggregate_id = $2",
            &[&stream.aggregate_type, &stream.aggregate_id],
        )
        .await
        .map_err(backend)?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// The versions of several streams in one query (each stream once).
async fn stream_versions<'s>(
    tx: &Transaction<'_>,
    streams: impl Iterator<Item = StreamId<'s>>,
) -> Result<HashMap<StreamId<'s>, u64>, StoreError> {
    let mut distinct: Vec<StreamId<'s>> = Vec::new();
    for stream in streams {
        if !distinct.contains(&stream) {
            distinct.push(stream);
        }
    }
    let types: Vec<&str> = distinct.iter().map(|s| s.aggregate_type).collect();
    let ids: Vec<&str> = distinct.iter().map(|s| s.aggregate_id).collect();
    let rows = tx
        .query(
            "SELECT (SELECT COALESCE(MAX(sequence), 0) FROM events_log WHERE aggregate_type = u.t AND aggregate_id = u.i)
             FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS u (t, i, n) ORDER BY u.n",
            &[&types, &ids],
        )
        .await
        .map_err(backend)?;
    let versions = rows.iter().map(|row| row.get::<_, i64>(0) as u64);
    Ok(distinct.into_iter().zip(versions).collect())
}

fn stored_event(row: &Row) -> Result<StoredEvent, StoreError> {
    let position = row.get::<_, i64>(0) as u64;
    let name: String = row.get(2);
    let metadata = serde_json::from_value(row.get(8)).map_err(|source| StoreError::Decode {
        position,
        name: name.clone(),
        source,
    })?;
    Ok(StoredEvent {
        position,
        event_id: row.get(1),
        name,
        version: u32::try_from(row.get::<_, i64>(3)).unwrap_or(u32::MAX),
        aggregate_type: row.get(4),
        aggregate_id: row.get(5),
        sequence: row.get::<_, i64>(6) as u64,
        payload: row.get(7),
        metadata,
        occurred_at: row.get(9),
    })
}

impl EventStore for PostgresStore {
    async fn append(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // The durable append, at a version: one transaction, and the workers woken.
        DurableStore::append_to(self, AppendAt::Version(at), events).await
    }

    async fn read_stream(&self, stream: StreamId<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        Self::read_where(
            &**client,
            "WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
            &[&stream.aggregate_type, &stream.aggregate_id],
        )
        .await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        Self::read_where(
            &**client,
            "WHERE position > $1 ORDER BY position LIMIT $2",
            &[&(after as i64), &(limit as i64)],
        )
        .await
    }

    async fn read_stream_after(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        snapshots::read_stream_after(self, stream, after).await
    }

    async fn load_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        snapshots::load(self, stream).await
    }

    async fn save_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<bool, StoreError> {
        snapshots::save(self, stream, snapshot).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::{aggregate_hash, fnv1a};

    #[test]
    fn messages_never_show_the_password() {
        use super::redacted;
        assert_eq!(
            redacted("postgres://app:s3cret@db:5432/shop?x=1"),
            "postgres://app:***@db:5432/shop?x=1"
        );
        assert_eq!(redacted("postgres://app@db/shop"), "postgres://app@db/shop");
    }

    #[test]
    fn our_segments_parameter_is_taken_out_of_the_url() {
        use super::split_url;
        let (url, n) = split_url("postgres://db/shop?segments=8&options=-c%20x%3Dy").unwrap();
        assert_eq!(
            (url.as_str(), n),
            ("postgres://db/shop?options=-c%20x%3Dy", Some(8))
        );
        let (url, n) = split_url("postgres://db/shop").unwrap();
        assert_eq!((url.as_str(), n), ("postgres://db/shop", None));
        let err = split_url("postgres://db/shop?segments=0").unwrap_err();
        assert!(
            err.to_string()
                .contains("`segments=0` is not a positive number"),
            "{err}"
        );
    }

    #[test]
    fn the_aggregate_hash_is_fnv1a_of_type_slash_id() {
        // Published FNV-1a 32 test vectors.
        assert_eq!(fnv1a(b"a".iter().copied()), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar".iter().copied()), 0xbf9c_f968);
        assert_eq!(
            aggregate_hash("Account", "1"),
            fnv1a(b"Account/1".iter().copied())
        );
    }
}
