//! Snapshots every N events: saved on append, used on load, ignored when their version changes.

use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(feature = "postgres")]
#[path = "../support/postgres.rs"]
mod pg;

use events::sourcing::Snapshots;
use events::store::{EventMetadata, EventStore, MemoryStore, SqliteStore, StreamId};
use events::{DomainEvent, EventSet, EventSourced, Handle, Repository};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, EventSet, Serialize, Deserialize, Debug, PartialEq)]
enum MeterEvent {
    Read { value: u64 },
}

/// The snapshot schema version the meter declares; the test changes it.
static VERSION: AtomicU32 = AtomicU32::new(1);

#[derive(Default, Serialize, Deserialize)]
struct Meter {
    total: u64,
    /// How many events the last load applied (not part of the snapshot).
    #[serde(skip)]
    replayed: u64,
}

impl EventSourced for Meter {
    const TYPE: &'static str = "Meter";
    type Event = MeterEvent;
    fn apply(&mut self, MeterEvent::Read { value }: &MeterEvent) {
        self.total += value;
        self.replayed += 1;
    }
    fn snapshots() -> Option<Snapshots<Self>> {
        Some(Snapshots::every(3).version(VERSION.load(Ordering::SeqCst)))
    }
}

#[derive(Clone)]
struct Read(u64);

impl Handle<Read> for Meter {
    type Error = String;
    type Services = ();
    async fn handle(&self, Read(value): Read, _: &()) -> Result<Vec<MeterEvent>, String> {
        Ok(vec![MeterEvent::Read { value }])
    }
}

const STREAM: StreamId<'static> = StreamId {
    aggregate_type: "Meter",
    aggregate_id: "m-1",
};

async fn read<S: EventStore>(repo: &Repository<Meter, S>, values: std::ops::RangeInclusive<u64>) {
    for value in values {
        let _ = repo
            .execute("m-1", Read(value), &(), EventMetadata::default())
            .await
            .unwrap();
    }
}

async fn snapshots_on<S: EventStore>(store: S) {
    VERSION.store(1, Ordering::SeqCst);
    let repo = Repository::<Meter, _>::new(store);
    read(&repo, 1..=7).await;
    let snapshot = repo.store().load_snapshot(STREAM).await.unwrap().unwrap();
    assert_eq!((snapshot.version, snapshot.sequence), (1, 6));
    assert_eq!(snapshot.state, serde_json::json!({ "total": 21 }));

    let (meter, version) = repo.load("m-1").await.unwrap();
    assert_eq!((meter.total, version), (28, 7));
    assert_eq!(
        meter.replayed, 1,
        "only the event after the snapshot is replayed"
    );

    // The state changed shape: the old snapshot is ignored, the whole stream replayed.
    VERSION.store(2, Ordering::SeqCst);
    let (meter, version) = repo.load("m-1").await.unwrap();
    assert_eq!((meter.total, meter.replayed, version), (28, 7, 7));

    // The next snapshot point replaces it with the new version.
    read(&repo, 8..=9).await;
    let snapshot = repo.store().load_snapshot(STREAM).await.unwrap().unwrap();
    assert_eq!((snapshot.version, snapshot.sequence), (2, 9));
    let (meter, version) = repo.load("m-1").await.unwrap();
    assert_eq!((meter.total, meter.replayed, version), (45, 0, 9));
}

#[tokio::test]
async fn snapshots_are_saved_every_n_events_used_on_load_and_invalidated_by_their_version() {
    snapshots_on(MemoryStore::new()).await;
    snapshots_on(SqliteStore::open_in_memory().unwrap()).await;
    // What `connect(url)` returns, and PostgreSQL (which kept no snapshots before).
    snapshots_on(events::store::connect("sqlite::memory:").await.unwrap()).await;
    #[cfg(feature = "postgres")]
    if let Some(store) = pg::store("snapshots").await {
        snapshots_on(store).await;
    }
}
