//! Snapshots: an aggregate type's policy of saving its state every N events, so loading a long
//! stream replays only what came after the last snapshot.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::sourcing::aggregate::EventSourced;
use crate::store::{EventStore, StoredSnapshot, StreamId};

/// When an aggregate type saves snapshots, and the version of their schema. Returned by
/// [`EventSourced::snapshots`]:
///
/// ```
/// use events::sourcing::Snapshots;
/// use events::{DomainEvent, EventSet, EventSourced};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(DomainEvent, EventSet, Serialize, Deserialize, Clone, Debug, PartialEq)]
/// #[event(aggregate = "Account")]
/// enum AccountEvent { Deposited { amount: u64 } }
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Account { balance: u64 }
///
/// impl EventSourced for Account {
///     const TYPE: &'static str = "Account";
///     type Event = AccountEvent;
///     fn apply(&mut self, AccountEvent::Deposited { amount }: &AccountEvent) {
///         self.balance += amount;
///     }
///     fn snapshots() -> Option<Snapshots<Self>> {
///         Some(Snapshots::every(100).version(2))
///     }
/// }
/// ```
///
/// Bump the version whenever the serialized state changes shape: snapshots of another version
/// are ignored (the aggregate is replayed from its first event) and replaced at the next save.
pub struct Snapshots<A> {
    every: u64,
    version: u32,
    encode: fn(&A) -> serde_json::Result<serde_json::Value>,
    decode: fn(serde_json::Value) -> serde_json::Result<A>,
}

impl<A: Serialize + DeserializeOwned> Snapshots<A> {
    /// A snapshot whenever the stream's version passes a multiple of `events` (at least 1);
    /// schema version 1.
    pub fn every(events: u64) -> Self {
        Self {
            every: events.max(1),
            version: 1,
            encode: |state| serde_json::to_value(state),
            decode: serde_json::from_value::<A>,
        }
    }
}

impl<A> Snapshots<A> {
    /// The snapshot schema version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Whether an append that took the stream from `before` to `after` passes a snapshot point.
    pub(crate) fn due(&self, before: u64, after: u64) -> bool {
        after / self.every > before / self.every
    }
}

/// The aggregate and its version from the stream's snapshot, if there is a usable one.
pub(crate) async fn restore<A: EventSourced, S: EventStore>(
    store: &S,
    stream: StreamId<'_>,
    policy: &Snapshots<A>,
) -> Result<Option<(A, u64)>, crate::store::StoreError> {
    let Some(snapshot) = store.load_snapshot(stream).await? else {
        return Ok(None);
    };
    if snapshot.version != policy.version {
        tracing::info!(
            aggregate = A::TYPE,
            id = stream.aggregate_id,
            stored = snapshot.version,
            current = policy.version,
            "snapshot of another version ignored; replaying the stream from the start"
        );
        return Ok(None);
    }
    match (policy.decode)(snapshot.state) {
        Ok(aggregate) => Ok(Some((aggregate, snapshot.sequence))),
        Err(e) => {
            tracing::warn!(
                aggregate = A::TYPE,
                id = stream.aggregate_id,
                "snapshot cannot be decoded ({e}); replaying the stream from the start (bump the snapshot version when the state changes shape)"
            );
            Ok(None)
        }
    }
}

/// Saves `aggregate` at `sequence`. A failure is logged, not returned: the events are already
/// committed, and the next load simply replays more.
pub(crate) async fn save<A: EventSourced, S: EventStore>(
    store: &S,
    stream: StreamId<'_>,
    policy: &Snapshots<A>,
    aggregate: &A,
    sequence: u64,
) {
    let state = match (policy.encode)(aggregate) {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(
                aggregate = A::TYPE,
                id = stream.aggregate_id,
                "snapshot not saved, the state does not serialize: {e}"
            );
            return;
        }
    };
    let snapshot = StoredSnapshot {
        version: policy.version,
        sequence,
        state,
    };
    match store.save_snapshot(stream, snapshot).await {
        Ok(true) => tracing::debug!(
            aggregate = A::TYPE,
            id = stream.aggregate_id,
            sequence,
            "snapshot saved"
        ),
        Ok(false) => tracing::warn!(
            aggregate = A::TYPE,
            "this event store keeps no snapshots; `snapshots()` has no effect"
        ),
        Err(e) => tracing::warn!(
            aggregate = A::TYPE,
            id = stream.aggregate_id,
            "snapshot not saved: {e}"
        ),
    }
}
