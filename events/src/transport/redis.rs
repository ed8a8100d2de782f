//! Redis Streams behind the transport seam (feature `redis`, URLs `redis://HOST:PORT`).
//!
//! **Why Streams, not Pub/Sub.** Redis Pub/Sub hands a message to the subscribers connected
//! at that instant and forgets it: a consumer that is down, restarting or reconnecting misses
//! it for good, nothing is acknowledged, nothing is redelivered, and nothing can be replayed.
//! A stream is an append-only log kept by the server: entries stay after they are read, a
//! consumer group remembers how far it has read and which entries each consumer holds without
//! acknowledgement (its pending entries list), and entries of a consumer that died are claimed
//! by another one (`XAUTOCLAIM`). That is the at-least-once delivery with acknowledgement that
//! the inbox needs.
//!
//! **Relay** ([`RedisPublisher`]). Each event is one entry, appended with `XADD` under the
//! entry id `<log position>-0`, its envelope in fields (see
//! [`envelope`]) and its JSON payload in `Events-Payload`. The append runs
//! in a small server-side script that first checks that the stream ends with the event sent
//! before it (the previous position): if one append is lost, every later one of the run is
//! refused instead of being stored after the hole, so the stream is always a prefix of the
//! log, in log order; an event the stream already ends with is reported as a duplicate.
//! Appends are pipelined on one connection (up to the relay's in-flight bound), a new
//! connection per run.
//!
//! **Trimming.** `XADD` trims with `MAXLEN ~ <max_len>` (default 1,000,000 entries, about
//! that many: Redis trims whole nodes): the stream keeps the most recent events, older ones
//! go. A consumer group that falls further behind than that loses the trimmed entries: the
//! inbox logs each one it finds gone from its pending list as an error and counts it
//! (`events_inbox_trimmed_total`). Size it from the longest outage a consumer must survive
//! (events per second × seconds), or pass 0 for no trimming (the stream grows until the
//! operator trims it).
//!
//! **Inbox** ([`RedisConsumer`]). The consuming service's consumer group (created at the
//! stream's start if missing) reads with `XREADGROUP ... >`, each process as its own consumer
//! (`<host>-<pid>`). An entry is acknowledged with `XACK` only after the inbox's store commit.
//! An entry handed back (an earlier event of its aggregate is not in yet) stays pending and is
//! read again from the consumer's own pending list after the delay. Entries of a consumer that
//! died stay pending under its name; any live consumer claims them with `XAUTOCLAIM` once
//! they have been idle for the claim time (default 30 s). An entry that is not an event is
//! acknowledged (never delivered again), logged and counted; it stays in the stream. Order per
//! aggregate and de-duplication by event id are the inbox's (see [`Inbox`](super::Inbox)).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};

use super::envelope;
use super::{
    Acknowledge, Confirmation, Confirmed, Consumer, Delivery, LastEvent, Locator, Next, Publisher,
    Settle, TransportError,
};
use crate::store::StoredEvent;

/// Metadata field naming the Redis stream an event came from.
pub const SOURCE_STREAM_FIELD: &str = "redis.stream";
/// Metadata field holding the event's position in the origin's log.
pub const SOURCE_POSITION_FIELD: &str = "redis.position";

/// Appends one entry if the stream ends with the expected entry (KEYS[1]: the stream; ARGV:
/// the expected last id, the new id, MAXLEN (0: none), then field/value pairs).
const APPEND: &str = r"
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = '0-0'
if #top > 0 then last = top[1][1] end
if last == ARGV[2] then return 'DUPLICATE' end
if last ~= ARGV[1] then
  return redis.error_reply('WRONGLAST the stream ends at ' .. last .. ', not at ' .. ARGV[1])
end
if ARGV[3] == '0' then return redis.call('XADD', KEYS[1], ARGV[2], unpack(ARGV, 4)) end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[2], unpack(ARGV, 4))
";

fn open(url: &str) -> Result<redis::Client, TransportError> {
    redis::Client::open(url).map_err(|e| TransportError::Connect {
        broker: "Redis",
        url: url.to_owned(),
        reason: e.to_string(),
        hint: "write it as redis://HOST:PORT[/DB]",
    })
}

fn stream_error(stream: &str, what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Stream {
        stream: stream.to_owned(),
        reason: format!("{what}: {e}"),
    }
}

/// The entry id of the event at `position`.
fn entry_id(position: u64) -> String {
    format!("{position}-0")
}

/// An entry's fields as text, and its payload.
fn read_entry(entry: &StreamId) -> Result<StoredEvent, String> {
    let fields: HashMap<&str, String> = entry
        .map
        .keys()
        .filter(|k| k.as_str() != envelope::PAYLOAD)
        .filter_map(|k| entry.get::<String>(k).map(|v| (k.as_str(), v)))
        .collect();
    let payload = entry.get::<Vec<u8>>(envelope::PAYLOAD);
    envelope::from_fields(
        |name| fields.get(name).map(String::as_str),
        payload.as_deref(),
    )
}

/// Publishes to a Redis stream: see the [module](self) docs.
pub struct RedisPublisher {
    client: redis::Client,
    key: String,
    max_len: u64,
    max_in_flight: usize,
    conn: Option<MultiplexedConnection>,
    script: String,
    last: String,
}

impl RedisPublisher {
    /// A publisher to the stream `key` at `url` (connected when the relay starts a run).
    pub async fn connect(url: &str, key: &str) -> Result<Self, TransportError> {
        let client = open(url)?;
        // Reach the server once now, so a wrong URL fails here, in one line.
        client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| TransportError::Connect {
                broker: "Redis",
                url: url.to_owned(),
                reason: e.to_string(),
                hint: "is redis-server running there?",
            })?;
        Ok(Self {
            client,
            key: key.to_owned(),
            max_len: 1_000_000,
            max_in_flight: 1024,
            conn: None,
            script: String::new(),
            last: "0-0".to_owned(),
        })
    }

    /// The stream's approximate bound (`XADD MAXLEN ~`; default 1,000,000 entries; 0: none).
    pub fn max_len(mut self, entries: u64) -> Self {
        self.max_len = entries;
        self
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> TransportError {
        stream_error(&self.key, what, e)
    }
}

#[async_trait::async_trait]
impl Publisher for RedisPublisher {
    fn checkpoint_name(&self) -> String {
        format!("relay:redis:{}", self.key)
    }

    fn destination(&self) -> &str {
        &self.key
    }

    async fn prepare(&mut self) -> Result<Option<LastEvent>, TransportError> {
        self.conn = None;
        // The connection's request buffer holds every append in flight, so each one is
        // queued, in order, when it is sent.
        let config = AsyncConnectionConfig::new()
            .set_pipeline_buffer_size(self.max_in_flight * 2 + 16)
            .set_response_timeout(Some(Duration::from_secs(5)));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error("connect", e))?;
        self.script = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(APPEND)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("SCRIPT LOAD", e))?;
        let top: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("XREVRANGE", e))?;
        self.conn = Some(conn);
        let Some(entry) = top.ids.first() else {
            self.last = "0-0".to_owned();
            return Ok(None);
        };
        self.last = entry.id.clone();
        let event = read_entry(entry).map_err(|e| {
            self.error(&format!("its last entry ({}) was not relayed", entry.id), e)
        })?;
        Ok(Some(LastEvent {
            event_id: event.event_id,
            position: event.position,
        }))
    }

    async fn send(&mut self, event: &StoredEvent) -> Result<Confirmation, TransportError> {
        let position = event.position;
        let id = entry_id(position);
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.script)
            .arg(1)
            .arg(&self.key)
            .arg(&self.last)
            .arg(&id)
            .arg(self.max_len);
        for (name, value) in envelope::to_fields(event) {
            cmd.arg(name).arg(value);
        }
        cmd.arg(envelope::PAYLOAD)
            .arg(serde_json::to_vec(&event.payload).expect("a JSON value serializes"));
        let mut conn = self.conn.clone().ok_or_else(|| TransportError::Publish {
            position,
            reason: "not connected".to_owned(),
        })?;
        self.last = id;
        // Unconstrained: tokio's cooperative budget would otherwise make a poll return before
        // the request is queued, and a later one could overtake it (the script would refuse it:
        // an interruption, never a gap).
        let mut reply = Box::pin(tokio::task::unconstrained(async move {
            cmd.query_async::<Value>(&mut conn).await
        }));
        // Poll once: the request is queued on the connection now, in log order (the buffer is
        // larger than the in-flight bound); its reply is awaited later.
        let early = std::future::poll_fn(|cx| match reply.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await;
        Ok(Box::pin(async move {
            let reply = match early {
                Some(r) => r,
                None => reply.await,
            };
            match reply {
                Ok(Value::SimpleString(s)) if s == "DUPLICATE" => Ok(Confirmed::Duplicate),
                Ok(_) => Ok(Confirmed::Stored),
                Err(e) => Err(TransportError::Publish {
                    position,
                    reason: if e.to_string().contains("WRONGLAST") {
                        format!("the stream did not store an earlier event of this run (refused to keep the log's order): {e}")
                    } else {
                        e.to_string()
                    },
                }),
            }
        }))
    }
}

/// Reads a Redis stream through a consumer group: see the [module](self) docs.
pub struct RedisConsumer {
    client: redis::Client,
    key: String,
    group: String,
    name: String,
    claim_after: Duration,
    batch: usize,
    conn: Option<MultiplexedConnection>,
    buffer: VecDeque<(StreamId, u32)>,
    /// When this consumer's own pending entries (handed back) are read again.
    retry_at: Arc<Mutex<Option<Instant>>>,
    /// Set by an acknowledgement that failed: the connection is dropped, and what was read
    /// through it is read again from this consumer's pending entries.
    broken: Arc<AtomicBool>,
    claimed_at: Option<Instant>,
}

impl RedisConsumer {
    /// A consumer in group `group` on the stream `key` at `url`; entries of a dead consumer
    /// are claimed once idle for `claim_after`.
    pub async fn connect(
        url: &str,
        key: &str,
        group: &str,
        claim_after: Duration,
    ) -> Result<Self, TransportError> {
        let client = open(url)?;
        let mut consumer = Self {
            client,
            key: key.to_owned(),
            group: group.to_owned(),
            name: format!(
                "{}-{}",
                gethostname::gethostname().to_string_lossy(),
                std::process::id()
            ),
            claim_after,
            batch: 100,
            conn: None,
            buffer: VecDeque::new(),
            retry_at: Arc::new(Mutex::new(None)),
            broken: Arc::new(AtomicBool::new(false)),
            claimed_at: None,
        };
        consumer
            .connection()
            .await
            .map_err(|e| TransportError::Connect {
                broker: "Redis",
                url: url.to_owned(),
                reason: e.to_string(),
                hint: "is redis-server running there?",
            })?;
        Ok(consumer)
    }

    /// How long an entry handed to a consumer that died waits before another consumer claims
    /// it (default 30 s).
    pub fn claim_after(mut self, idle: Duration) -> Self {
        self.claim_after = idle;
        self
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> TransportError {
        stream_error(&self.key, what, e)
    }

    /// The connection, made (and the group created) when missing.
    async fn connection(&mut self) -> Result<MultiplexedConnection, TransportError> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        let config =
            AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error("connect", e))?;
        let created: Result<(), _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(self.error(&format!("XGROUP CREATE {}", self.group), e)),
        }
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    /// Runs a command; a failure drops the connection (the next call makes a new one).
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, TransportError> {
        let mut conn = self.connection().await?;
        match cmd.query_async(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.reset();
                Err(self.error(what, e))
            }
        }
    }

    /// Drops the connection and what was read through it: those entries stay pending for this
    /// consumer and are read again (from its pending entries) once connected.
    fn reset(&mut self) {
        self.conn = None;
        self.buffer.clear();
        *self.retry_at.lock().expect("not poisoned") = Some(Instant::now());
    }

    async fn read(&mut self, from: &str, block: Option<Duration>) -> Result<usize, TransportError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(self.batch);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.key).arg(from);
        let reply: Option<StreamReadReply> = self.query("XREADGROUP", &cmd).await?;
        let attempt = if from == ">" { 1 } else { 2 };
        let before = self.buffer.len();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            self.buffer
                .extend(key.ids.into_iter().map(|entry| (entry, attempt)));
        }
        Ok(self.buffer.len() - before)
    }

    /// Claims the entries of consumers that died (idle longer than the claim time).
    async fn claim(&mut self) -> Result<(), TransportError> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.key)
            .arg(&self.group)
            .arg(&self.name)
            .arg(self.claim_after.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(self.batch);
        let reply: StreamAutoClaimReply = self.query("XAUTOCLAIM", &cmd).await?;
        for id in &reply.deleted_ids {
            metrics::counter!("events_inbox_trimmed_total", "source" => self.key.clone())
                .increment(1);
            tracing::error!(stream = self.key.as_str(), entry_id = id.as_str(), "entry trimmed from the stream before this service took it (MAXLEN too small for the consumer's lag): the event is lost to this service");
        }
        if !reply.claimed.is_empty() {
            tracing::info!(
                stream = self.key.as_str(),
                claimed = reply.claimed.len(),
                "claimed entries of a consumer that stopped without acknowledging them"
            );
        }
        self.buffer
            .extend(reply.claimed.into_iter().map(|entry| (entry, 2)));
        Ok(())
    }

    /// Entries handed out and not acknowledged, by every consumer of the group.
    async fn pending(&mut self) -> Result<u64, TransportError> {
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&self.key).arg(&self.group);
        let reply: Value = self.query("XPENDING", &cmd).await?;
        Ok(match reply {
            Value::Array(items) => match items.first() {
                Some(Value::Int(n)) => (*n).max(0) as u64,
                _ => 0,
            },
            _ => 0,
        })
    }

    fn delivery(&self, entry: StreamId, attempt: u32) -> Delivery {
        let event = read_entry(&entry);
        Delivery {
            event,
            at: Locator {
                field: "entry_id",
                value: entry.id.clone(),
            },
            attempt,
            handle: Box::new(RedisAck {
                conn: self.conn.clone(),
                key: self.key.clone(),
                group: self.group.clone(),
                id: entry.id,
                retry_at: Arc::clone(&self.retry_at),
                broken: Arc::clone(&self.broken),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Consumer for RedisConsumer {
    fn source(&self) -> &str {
        &self.key
    }

    fn fields(&self) -> (&'static str, &'static str) {
        (SOURCE_STREAM_FIELD, SOURCE_POSITION_FIELD)
    }

    async fn next(&mut self, drain: bool) -> Result<Next, TransportError> {
        if self.broken.swap(false, Ordering::SeqCst) {
            self.reset();
        }
        if let Some((entry, attempt)) = self.buffer.pop_front() {
            return Ok(Next::Message(self.delivery(entry, attempt)));
        }
        let due = {
            let mut retry_at = self.retry_at.lock().expect("not poisoned");
            match *retry_at {
                Some(at) if at <= Instant::now() => {
                    *retry_at = None;
                    true
                }
                _ => false,
            }
        };
        if due && self.read("0", None).await? > 0 {
            return Ok(Next::Idle);
        }
        if self
            .claimed_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.claimed_at = Some(Instant::now());
            self.claim().await?;
            if !self.buffer.is_empty() {
                return Ok(Next::Idle);
            }
        }
        let block = Duration::from_millis(if drain { 100 } else { 1000 });
        let block = match *self.retry_at.lock().expect("not poisoned") {
            Some(at) => block.min(at.saturating_duration_since(Instant::now())),
            None => block,
        };
        if self
            .read(">", Some(block.max(Duration::from_millis(1))))
            .await?
            == 0
            && drain
            && self.retry_at.lock().expect("not poisoned").is_none()
            && self.pending().await? == 0
        {
            return Ok(Next::Drained);
        }
        Ok(Next::Idle)
    }
}

struct RedisAck {
    conn: Option<MultiplexedConnection>,
    key: String,
    group: String,
    id: String,
    retry_at: Arc<Mutex<Option<Instant>>>,
    broken: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Acknowledge for RedisAck {
    async fn settle(self: Box<Self>, how: Settle) -> Result<(), TransportError> {
        match how {
            // Not an event: acknowledged so that it is never delivered again; it stays in the
            // stream.
            Settle::Ack | Settle::Reject => {
                let Some(mut conn) = self.conn.clone() else {
                    self.broken.store(true, Ordering::SeqCst);
                    return Err(stream_error(&self.key, "XACK", "not connected"));
                };
                redis::cmd("XACK")
                    .arg(&self.key)
                    .arg(&self.group)
                    .arg(&self.id)
                    .query_async::<i64>(&mut conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        self.broken.store(true, Ordering::SeqCst);
                        stream_error(&self.key, "XACK", e)
                    })
            }
            Settle::Retry(delay) => {
                // Left pending: read again from this consumer's own pending entries.
                let at = Instant::now() + delay;
                let mut retry_at = self.retry_at.lock().expect("not poisoned");
                *retry_at = Some(retry_at.map_or(at, |t| t.min(at)));
                Ok(())
            }
        }
    }
}
