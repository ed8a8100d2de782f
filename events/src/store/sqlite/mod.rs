//! The embedded durable store: an SQLite file (or `:memory:`), no server.
//!
//! One table is the append-only log; two more hold each durable handler's checkpoint and lease,
//! and its pending failures (retries, dead letters, and the events held back behind them), and
//! one the aggregates' snapshots: see `schema.sql` next to this file. `delivery.rs` implements
//! [`DurableStore`](super::DurableStore) on them, with one segment per handler; `snapshots.rs`
//! reads and writes the snapshots.
//!
//! **No gaps.** SQLite runs one write transaction at a time, and a position is assigned inside
//! it (`MAX(position) + 1`). A reader therefore never sees position `p` committed while a lower
//! position is still in flight: the log it reads is always a gap-free prefix, and a checkpoint
//! can simply be "the last position handled".

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, Row, Transaction, TransactionBehavior};
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    EventMetadata, EventStore, NewEvent, StoreError, StoredEvent, StoredSnapshot, StreamId,
    StreamVersion,
};
use crate::event::DomainEvent;

mod delivery;
mod query;
mod snapshots;
pub(crate) mod timers;
pub(crate) mod views;

/// The tables, applied at open.
const SCHEMA: &str = include_str!("schema.sql");

/// Columns added to `events_checkpoints` after its first release: files created before get
/// them at open.
const ADDED_CHECKPOINT_COLUMNS: [(&str, &str); 3] = [
    ("lease_host", "TEXT"),
    ("lease_pid", "INTEGER"),
    ("lease_token", "INTEGER NOT NULL DEFAULT 0"),
];

/// How long opening waits for other processes that hold the file's lock, like every
/// statement does.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The embedded event store. Cheap to clone: clones share one connection and one wake-up
/// signal, so a worker in the same process wakes as soon as an append commits. Opening waits
/// (up to 10 s) for other processes that are creating or writing the same file.
///
/// ```
/// use events::store::{EventMetadata, EventStore, NewEvent, SqliteStore, StreamId};
/// # #[derive(events::DomainEvent, serde::Serialize)] struct Opened { owner: String }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = SqliteStore::open_in_memory()?;
/// let stream = StreamId { aggregate_type: "Account", aggregate_id: "a-1" };
/// let event = NewEvent::new(&Opened { owner: "Ada".into() }, EventMetadata::default())?;
/// let stored = store.append(stream.at(0), vec![event]).await?;
/// assert_eq!((stored[0].position, stored[0].sequence), (1, 1));
/// # Ok::<(), events::store::StoreError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    wakeups: Arc<watch::Sender<u64>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn backend(err: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(err))
}

fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// Microseconds since the Unix epoch, as stored.
fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

impl SqliteStore {
    /// Opens (or creates) the store in an SQLite file, creating its tables if needed. The error
    /// names the file and says when its directory is missing or it is not an SQLite database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        check_directory(&path)?;
        let conn = Connection::open(&path).map_err(|e| open_error(e.to_string()))?;
        Self::init(conn, Some(path.clone())).map_err(|e| match e {
            StoreError::Backend(source) => open_error(match source.downcast_ref() {
                Some(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::NotADatabase => {
                    "the file exists but is not an SQLite database".to_owned()
                }
                _ => source.to_string(),
            }),
            other => other,
        })
    }

    /// Opens the store in an existing SQLite file; never creates one. A missing file is an
    /// error that names it (for commands that only read: a mistyped path must not leave an
    /// empty database behind).
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        check_directory(path)?;
        if !path.is_file() {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                reason: "it does not exist (this command only reads and creates none); check the path, or create the store first".to_owned(),
            });
        }
        Self::open(path)
    }

    /// Where this store lives, as a URL: `sqlite://` and its absolute path, or
    /// `sqlite::memory:`.
    pub fn location(&self) -> String {
        match &self.path {
            Some(path) => format!(
                "sqlite://{}",
                std::path::absolute(path)
                    .unwrap_or_else(|_| path.clone())
                    .display()
            ),
            None => "sqlite::memory:".to_owned(),
        }
    }

    /// A private store in memory (tests, examples).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(backend)?, None)
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
        // Switching a new file to WAL and creating the tables take the file's exclusive lock,
        // and SQLite does not always call the busy handler for them: several processes opening
        // one new file at once retry here instead of failing with `database is locked`.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            match Self::prepare(&conn) {
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other.map_err(backend)?,
            }
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            wakeups: Arc::new(watch::Sender::new(0)),
            path,
        })
    }

    /// Journal mode, tables, and columns added since a file was created.
    fn prepare(conn: &Connection) -> rusqlite::Result<()> {
        // WAL: readers (workers, the CLI) never block the writer. NORMAL sync survives a crash
        // of the process; only a power loss can lose the last commits.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        for (column, decl) in ADDED_CHECKPOINT_COLUMNS {
            let present: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('events_checkpoints') WHERE name = ?1",
                [column],
                |r| r.get(0),
            )?;
            if !present {
                conn.execute_batch(&format!(
                    "ALTER TABLE events_checkpoints ADD COLUMN {column} {decl}"
                ))?;
            }
        }
        Ok(())
    }

    /// The file this store lives in (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The connection, or [`StoreError::Reentered`] when this thread is inside this store's
    /// own [`transaction`](Self::transaction) (std's mutex would deadlock).
    pub(crate) fn try_lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        if reentry::held(&self.conn) {
            return Err(StoreError::Reentered);
        }
        Ok(self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Wakes workers of this process waiting for new events.
    fn wake(&self) {
        self.wakeups.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs `f` in one write transaction on the store's connection and commits: the
    /// transactional outbox. Write your own rows with `tx` and append events with
    /// [`append_in`](Self::append_in); both commit together, or, if `f` fails, neither does.
    /// Workers of this process wake right after the commit.
    ///
    /// ```
    /// use events::store::{EventMetadata, NewEvent, SqliteStore, StreamId};
    /// use events::BoxError;
    /// # #[derive(events::DomainEvent, serde::Serialize)] struct CardAdded { card: String }
    /// let store = SqliteStore::open_in_memory()?;
    /// store.transaction(|tx| Ok::<_, BoxError>(tx.execute_batch("CREATE TABLE cards (name TEXT)")?))?;
    /// let library = StreamId { aggregate_type: "Library", aggregate_id: "1" };
    /// store.transaction(|tx| {
    ///     tx.execute("INSERT INTO cards (name) VALUES (?1)", ["Black Lotus"])?;
    ///     let e = NewEvent::new(&CardAdded { card: "Black Lotus".into() }, EventMetadata::default())?;
    ///     SqliteStore::append_in(tx, library.at(0), vec![e])?;
    ///     Ok::<_, BoxError>(())
    /// })?;
    /// assert_eq!(store.head()?, 1);
    /// # Ok::<(), BoxError>(())
    /// ```
    pub fn transaction<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let out = self.write(f)?;
        self.wake();
        Ok(out)
    }

    /// One write transaction, committed, without waking workers: for the worker's own
    /// bookkeeping (checkpoints, failures), which appends nothing.
    pub(crate) fn write<T, E>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.try_lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = {
            let _held = reentry::Hold::new(&self.conn);
            f(&tx)?
        };
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    /// Appends to a stream inside the caller's transaction (see
    /// [`transaction`](Self::transaction)): checks the expected version, assigns positions and
    /// sequences. Nothing is visible until the caller commits.
    pub fn append_in(
        tx: &Transaction<'_>,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let stream = at.stream;
        at.check(stream_version(tx, stream)?)?;
        let first = head(tx)? + 1;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events_log (position, event_id, name, version, aggregate_type, aggregate_id, sequence, payload, metadata, occurred_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(backend)?;
        let mut stored = Vec::with_capacity(events.len());
        for (i, e) in (0u64..).zip(events) {
            let (position, sequence) = (first + i, at.version + i + 1);
            let metadata = serde_json::to_string(&e.metadata).expect("metadata serializes");
            insert
                .execute(params![
                    position as i64,
                    e.event_id.to_string(),
                    e.name,
                    e.version,
                    stream.aggregate_type,
                    stream.aggregate_id,
                    sequence as i64,
                    e.payload.to_string(),
                    metadata,
                    micros(e.occurred_at),
                ])
                .map_err(backend)?;
            stored.push(e.stored(stream, position, sequence));
        }
        Ok(stored)
    }

    /// Appends one typed event to its aggregate's stream (from `E::AGGREGATE_TYPE` and
    /// `aggregate_id()`, or the event's name when it has none), after whatever the stream holds:
    /// for events that need no optimistic concurrency check.
    pub fn append_event<E: DomainEvent + Serialize>(
        &self,
        event: &E,
        metadata: EventMetadata,
    ) -> Result<StoredEvent, StoreError> {
        let new = NewEvent::new(event, metadata)?;
        let aggregate_type = E::AGGREGATE_TYPE.unwrap_or(E::NAME);
        let aggregate_id = event.aggregate_id().unwrap_or_default();
        let stream = StreamId {
            aggregate_type,
            aggregate_id: &aggregate_id,
        };
        self.transaction(|tx| Self::append_last(tx, stream, new))
    }

    /// Appends one event after whatever its stream holds, inside the caller's transaction.
    pub(crate) fn append_last(
        tx: &Transaction<'_>,
        stream: StreamId<'_>,
        event: NewEvent,
    ) -> Result<StoredEvent, StoreError> {
        let current = stream_version(tx, stream)?;
        Ok(Self::append_in(tx, stream.at(current), vec![event])?.remove(0))
    }

    /// The highest position in the log (0 when empty).
    pub fn head(&self) -> Result<u64, StoreError> {
        head(&*self.try_lock()?)
    }

    /// Like [`head`](Self::head), inside the caller's transaction.
    pub fn head_in(tx: &Transaction<'_>) -> Result<u64, StoreError> {
        head(tx)
    }

    fn read_where(
        conn: &Connection,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT position, event_id, name, version, aggregate_type, aggregate_id, sequence, payload, metadata, occurred_at
             FROM events_log {filter}"
        );
        select(conn, &sql, args, raw_row)?
            .into_iter()
            .map(RawRow::decode)
            .collect()
    }
}

/// Every row `sql` selects, mapped by `row`: through the connection's statement cache, with
/// the store's errors.
fn select<T>(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt.query_map(args, row).map_err(backend)?;
    rows.map(|r| r.map_err(backend)).collect()
}

/// Refuses a path whose directory does not exist, saying so.
fn check_directory(path: &Path) -> Result<(), StoreError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(StoreError::Open {
            path: path.to_path_buf(),
            reason: format!(
                "the directory {} does not exist; create it first",
                dir.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// The version of a stream: its last sequence (0 when empty).
fn stream_version(conn: &Connection, stream: StreamId<'_>) -> Result<u64, StoreError> {
    conn.query_row(
        "SELECT COALESCE(MAX(sequence), 0) FROM events_log WHERE aggregate_type = ?1 AND aggregate_id = ?2",
        params![stream.aggregate_type, stream.aggregate_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v as u64)
    .map_err(backend)
}

/// The last position of the log (0 when empty).
fn head(conn: &Connection) -> Result<u64, StoreError> {
    conn.query_row(
        "SELECT COALESCE(MAX(position), 0) FROM events_log",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v as u64)
    .map_err(backend)
}

/// A log row before its JSON columns are parsed: a malformed row is an error of that row
/// (its position is known), not of the whole read.
struct RawRow {
    position: u64,
    event_id: String,
    name: String,
    version: u32,
    aggregate_type: String,
    aggregate_id: String,
    sequence: u64,
    payload: String,
    metadata: String,
    occurred_at: i64,
}

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        position: r.get::<_, i64>(0)? as u64,
        event_id: r.get(1)?,
        name: r.get(2)?,
        version: r.get(3)?,
        aggregate_type: r.get(4)?,
        aggregate_id: r.get(5)?,
        sequence: r.get::<_, i64>(6)? as u64,
        payload: r.get(7)?,
        metadata: r.get(8)?,
        occurred_at: r.get(9)?,
    })
}

impl RawRow {
    fn decode(self) -> Result<StoredEvent, StoreError> {
        let decode_err = |source| StoreError::Decode {
            position: self.position,
            name: self.name.clone(),
            source,
        };
        // A payload that is not JSON at all is kept as a JSON string, so it reaches the handler's
        // decoding and ends up as a dead letter with the serde error instead of blocking reads.
        let payload = serde_json::from_str(&self.payload)
            .unwrap_or(serde_json::Value::String(self.payload.clone()));
        let metadata = serde_json::from_str(&self.metadata).map_err(decode_err)?;
        let event_id = Uuid::parse_str(&self.event_id).unwrap_or_else(|_| Uuid::nil());
        Ok(StoredEvent {
            position: self.position,
            event_id,
            name: self.name,
            version: self.version,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            payload,
            metadata,
            occurred_at: from_micros(self.occurred_at),
        })
    }
}

impl EventStore for SqliteStore {
    async fn append(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.transaction(|tx| Self::append_in(tx, at, events))
    }

    async fn read_stream(&self, stream: StreamId<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        Self::read_where(
            &*self.try_lock()?,
            "WHERE aggregate_type = ?1 AND aggregate_id = ?2 ORDER BY sequence",
            params![stream.aggregate_type, stream.aggregate_id],
        )
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        Self::read_where(
            &*self.try_lock()?,
            "WHERE position > ?1 ORDER BY position LIMIT ?2",
            params![after as i64, limit as i64],
        )
    }

    async fn read_stream_after(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        snapshots::read_stream_after(self, stream, after)
    }

    async fn load_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        snapshots::load(self, stream)
    }

    async fn save_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<bool, StoreError> {
        snapshots::save(self, stream, snapshot)
    }
}

/// Which stores' connections this thread holds inside a `transaction` closure.
mod reentry {
    use std::cell::RefCell;
    use std::sync::{Arc, Mutex};

    use rusqlite::Connection;

    thread_local! {
        static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }

    fn key(conn: &Arc<Mutex<Connection>>) -> usize {
        Arc::as_ptr(conn) as usize
    }

    pub(super) fn held(conn: &Arc<Mutex<Connection>>) -> bool {
        HELD.with(|h| h.borrow().contains(&key(conn)))
    }

    /// Marks the connection held by this thread until dropped (also on a panic).
    pub(super) struct Hold(usize);

    impl Hold {
        pub(super) fn new(conn: &Arc<Mutex<Connection>>) -> Self {
            let key = key(conn);
            HELD.with(|h| h.borrow_mut().push(key));
            Hold(key)
        }
    }

    impl Drop for Hold {
        fn drop(&mut self) {
            HELD.with(|h| {
                let mut held = h.borrow_mut();
                if let Some(i) = held.iter().rposition(|k| *k == self.0) {
                    held.remove(i);
                }
            });
        }
    }
}
