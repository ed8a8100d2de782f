//! An in-memory event store: one mutex over the log, so an append is atomic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    EventStore, NewEvent, StoreError, StoredEvent, StoredSnapshot, StreamId, StreamVersion,
};

/// An in-memory [`EventStore`]. Clones share one log.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Log>>,
}

#[derive(Debug, Default)]
struct Log {
    events: Vec<StoredEvent>,
    /// Per stream (aggregate type, id): indices into `events`.
    streams: HashMap<(String, String), Vec<usize>>,
    /// Per stream: its snapshot.
    snapshots: HashMap<(String, String), StoredSnapshot>,
}

fn key(stream: StreamId<'_>) -> (String, String) {
    (
        stream.aggregate_type.to_owned(),
        stream.aggregate_id.to_owned(),
    )
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events the log holds.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave a half-written append: appends push only
        // after every check, so the log is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append_now(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut log = self.lock();
        let key = key(at.stream);
        let actual = log.streams.get(&key).map_or(0, |s| s.len() as u64);
        at.check(actual)?;
        let mut stored = Vec::with_capacity(events.len());
        for (i, e) in (0u64..).zip(events) {
            let position = log.events.len() as u64 + 1;
            let event = e.stored(at.stream, position, at.version + i + 1);
            let index = log.events.len();
            log.events.push(event.clone());
            log.streams.entry(key.clone()).or_default().push(index);
            stored.push(event);
        }
        Ok(stored)
    }
}

impl EventStore for MemoryStore {
    async fn append(
        &self,
        at: StreamVersion<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.append_now(at, events)
    }

    async fn read_stream(&self, stream: StreamId<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        let log = self.lock();
        Ok(log
            .streams
            .get(&key(stream))
            .map(|s| s.iter().map(|&i| log.events[i].clone()).collect())
            .unwrap_or_default())
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let log = self.lock();
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(log.events.len());
        Ok(log.events[start..].iter().take(limit).cloned().collect())
    }

    async fn read_stream_after(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let log = self.lock();
        let indices = log.streams.get(&key(stream)).map_or(&[][..], Vec::as_slice);
        let skip = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(indices.len());
        Ok(indices[skip..]
            .iter()
            .map(|&i| log.events[i].clone())
            .collect())
    }

    async fn load_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        Ok(self.lock().snapshots.get(&key(stream)).cloned())
    }

    async fn save_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<bool, StoreError> {
        self.lock().snapshots.insert(key(stream), snapshot);
        Ok(true)
    }
}
