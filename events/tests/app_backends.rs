#![cfg(feature = "sqlite")]
//! One application API on every backend: each scenario below is written once, as an async
//! function of the `Arc<dyn DurableStore>` that `events::store::connect(url)` returns, and runs
//! unchanged on SQLite (in memory and in a file) and on PostgreSQL (skipped without a server,
//! failing with `CI=true`: `scripts/servers.sh run cargo test ...`).
//!
//! To add a scenario: write `async fn name(store: Arc<dyn DurableStore>)` and add its name to
//! the `scenarios!` list at the end; it then runs on every backend, on a fresh store each.

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

use std::sync::Arc;

use events::sourcing::{AggregateView, EventAt, Snapshots, View, ViewRepository};
use events::store::durable::{DurableStore, ViewWrite};
use events::store::{connect, EventMetadata, EventStore, StoreError, StoredSnapshot, StreamId};
use events::{Bus, Command, DomainEvent, EventSet, EventSourced, Handle, Repository};
use serde::{Deserialize, Serialize};

// ---- the domain: a meter whose readings are summed ------------------------------------------

#[derive(DomainEvent, EventSet, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(aggregate = "Meter")]
enum MeterEvent {
    Read { value: u64 },
}

#[derive(Default, Serialize, Deserialize, Debug)]
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
        Some(Snapshots::every(3))
    }
}

/// A reading, routed to its meter (`#[command(id)]`) or sent with `send_to`.
#[derive(Command, Clone, Debug)]
#[command(aggregate = Meter)]
struct TakeReading {
    #[command(id)]
    meter: String,
    value: u64,
}

impl Handle<TakeReading> for Meter {
    type Error = String;
    type Services = ();
    async fn handle(&self, command: TakeReading, _: &()) -> Result<Vec<MeterEvent>, String> {
        if command.value == 0 {
            return Err("a reading of 0 is refused".to_owned());
        }
        Ok(vec![MeterEvent::Read {
            value: command.value,
        }])
    }
}

fn meter(id: &str) -> StreamId<'_> {
    StreamId {
        aggregate_type: Meter::TYPE,
        aggregate_id: id,
    }
}

/// The view of one meter, kept from its events.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Usage {
    total: u64,
    readings: u32,
}

impl View for Usage {
    const NAME: &'static str = "usage";
}

impl AggregateView for Usage {
    type Event = MeterEvent;
    fn update(&mut self, MeterEvent::Read { value }: &MeterEvent) {
        self.total += value;
        self.readings += 1;
    }
}

fn usage(total: u64, readings: u32) -> Usage {
    Usage { total, readings }
}

// ---- scenarios -----------------------------------------------------------------------------

/// Views: load, save, update by sequence (an event already held is skipped, so a replay
/// changes nothing), update_with from stored events, clear.
async fn views_load_save_update_and_skip_replays(store: Arc<dyn DurableStore>) {
    let views = ViewRepository::<Usage>::new(&store);
    assert_eq!(views.load("m-1").await.unwrap(), None);
    let at = |sequence| EventAt {
        id: "m-1",
        sequence,
    };
    let read = |u: &mut Usage| {
        u.total += 5;
        u.readings += 1;
    };
    assert!(views.update(at(1), read).await.unwrap());
    assert!(
        !views.update(at(1), read).await.unwrap(),
        "sequence 1 is in"
    );
    assert!(views.update(at(2), read).await.unwrap());
    assert_eq!(views.load("m-1").await.unwrap(), Some((usage(10, 2), 2)));
    assert!(!views.update(at(2), read).await.unwrap());
    assert_eq!(views.load("m-1").await.unwrap(), Some((usage(10, 2), 2)));

    views.save("m-2", &usage(7, 1), 4).await.unwrap();
    assert_eq!(views.load("m-2").await.unwrap(), Some((usage(7, 1), 4)));
    views.save("m-2", &usage(1, 1), 1).await.unwrap();
    assert_eq!(
        views.load("m-2").await.unwrap(),
        Some((usage(1, 1), 1)),
        "save writes whatever the view held"
    );

    // update_with reads the aggregate and the sequence from the stored event's envelope; a
    // replay of the stream applies nothing twice.
    let repo = Repository::<Meter, _>::new(store.clone());
    for value in [3, 4] {
        let (_, version) = repo.load("m-3").await.unwrap();
        let _ = repo
            .append(
                "m-3",
                version,
                vec![MeterEvent::Read { value }],
                EventMetadata::default(),
            )
            .await
            .unwrap();
    }
    for _replay in 0..2 {
        for stored in store.read_stream(meter("m-3")).await.unwrap() {
            let event = stored.decode::<MeterEvent>().unwrap().unwrap();
            views
                .update_with(&event, &stored.meta::<MeterEvent>())
                .await
                .unwrap();
        }
    }
    assert_eq!(views.load("m-3").await.unwrap(), Some((usage(7, 2), 2)));
    let not_stored = events::Meta::new::<MeterEvent>();
    let err = views
        .update_with(&MeterEvent::Read { value: 1 }, &not_stored)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("durable handler"), "{err}");

    // Views of another type are not touched by a clear.
    let other = ViewRepository::<Other>::new(&store);
    other.save("m-1", &Other { n: 1 }, 1).await.unwrap();
    assert_eq!(views.clear().await.unwrap(), 3);
    assert_eq!(views.load("m-1").await.unwrap(), None);
    assert_eq!(views.load("m-3").await.unwrap(), None);
    assert_eq!(other.load("m-1").await.unwrap(), Some((Other { n: 1 }, 1)));
}

#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Other {
    n: u32,
}

impl View for Other {
    const NAME: &'static str = "other";
}

/// An update whose view another writer changes between its read and its write reads it again
/// and applies the change to what that writer left: no update is lost.
async fn views_update_loses_no_concurrent_write(store: Arc<dyn DurableStore>) {
    let views = ViewRepository::<Usage>::new(&store);
    views.save("m-1", &usage(1, 1), 1).await.unwrap();
    let mut calls = 0;
    let changed = views
        .update(
            EventAt {
                id: "m-1",
                sequence: 3,
            },
            |u| {
                calls += 1;
                if calls == 1 {
                    // Another writer applies sequence 2 while this update holds sequence 1.
                    let other = views.clone();
                    tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current().block_on(other.save(
                            "m-1",
                            &usage(101, 2),
                            2,
                        ))
                    })
                    .unwrap();
                }
                u.total += 10;
                u.readings += 1;
            },
        )
        .await
        .unwrap();
    assert!(changed);
    assert_eq!(
        calls, 2,
        "the change ran again on the view as the other writer left it"
    );
    assert_eq!(views.load("m-1").await.unwrap(), Some((usage(111, 3), 3)));

    // The write the repository relies on: only over the version it read.
    let write = |expected, version| ViewWrite {
        view: Usage::NAME,
        id: "m-9".to_owned(),
        body: serde_json::json!({ "total": version, "readings": 1 }),
        expected,
        version,
    };
    assert!(store.write_view(&write(None, 1)).await.unwrap());
    assert!(
        !store.write_view(&write(None, 2)).await.unwrap(),
        "it exists"
    );
    assert!(
        !store.write_view(&write(Some(5), 2)).await.unwrap(),
        "not at 5"
    );
    assert_eq!(views.load("m-9").await.unwrap(), Some((usage(1, 1), 1)));
    assert!(store.write_view(&write(Some(1), 2)).await.unwrap());
    assert_eq!(views.load("m-9").await.unwrap(), Some((usage(2, 1), 2)));
}

/// An event-sourced aggregate with snapshots: saved every 3 events, a load starts from the
/// snapshot and applies only the events after it; an append at a stale version writes
/// nothing.
async fn aggregate_loads_from_its_snapshot_and_conflicts_write_nothing(
    store: Arc<dyn DurableStore>,
) {
    let repo = Repository::<Meter, Arc<dyn DurableStore>>::new(store.clone());
    for value in 1..=7 {
        let _ = repo
            .execute(
                "m-1",
                TakeReading {
                    meter: "m-1".into(),
                    value,
                },
                &(),
                EventMetadata::default(),
            )
            .await
            .unwrap();
    }
    let snapshot = store.read_snapshot(meter("m-1")).await.unwrap().unwrap();
    assert_eq!((snapshot.version, snapshot.sequence), (1, 6));
    assert_eq!(snapshot.state, serde_json::json!({ "total": 21 }));
    let (loaded, version) = repo.load("m-1").await.unwrap();
    assert_eq!((loaded.total, version), (28, 7));
    assert_eq!(loaded.replayed, 1, "only the event after the snapshot");

    // The state comes from the snapshot, not from replaying the stream.
    let forged = StoredSnapshot {
        version: 1,
        sequence: 6,
        state: serde_json::json!({ "total": 1000 }),
    };
    assert!(repo
        .store()
        .save_snapshot(meter("m-1"), forged.clone())
        .await
        .unwrap());
    assert_eq!(
        repo.store().load_snapshot(meter("m-1")).await.unwrap(),
        Some(forged)
    );
    let (loaded, version) = repo.load("m-1").await.unwrap();
    assert_eq!((loaded.total, loaded.replayed, version), (1007, 1, 7));

    // A writer that loaded at version 5 loses against the one that went on to 7.
    let head = store.log_head().await.unwrap();
    let err = repo
        .append(
            "m-1",
            5,
            vec![MeterEvent::Read { value: 1 }, MeterEvent::Read { value: 2 }],
            EventMetadata::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 5,
                actual: 7,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.log_head().await.unwrap(), head, "nothing written");
    assert_eq!(store.read_stream(meter("m-1")).await.unwrap().len(), 7);
    let after = store.read_stream_after(meter("m-1"), 5).await.unwrap();
    assert_eq!(after.iter().map(|e| e.sequence).collect::<Vec<_>>(), [6, 7]);

    // A stream without a snapshot is replayed whole.
    let _ = repo
        .append(
            "m-2",
            0,
            vec![MeterEvent::Read { value: 2 }],
            EventMetadata::default(),
        )
        .await
        .unwrap();
    assert_eq!(store.read_snapshot(meter("m-2")).await.unwrap(), None);
    let (loaded, version) = repo.load("m-2").await.unwrap();
    assert_eq!((loaded.total, loaded.replayed, version), (2, 1, 1));
}

/// A command routed to its aggregate through a bus whose event store is what `connect`
/// returned: loaded, decided and appended there.
async fn routed_commands_use_the_connected_store(store: Arc<dyn DurableStore>) {
    let bus = Bus::builder().event_store(store.clone()).build().unwrap();
    let reading = |value| TakeReading {
        meter: "m-1".into(),
        value,
    };
    assert_eq!(bus.send(reading(4)).await.unwrap(), 1);
    assert_eq!(bus.send(reading(5)).await.unwrap(), 2);
    assert_eq!(bus.send_to("m-2", reading(6)).await.unwrap(), 1);
    let refused = bus.send(reading(0)).await.unwrap_err();
    assert!(
        refused.to_string().contains("a reading of 0 is refused"),
        "{refused}"
    );

    let stream = store.read_stream(meter("m-1")).await.unwrap();
    assert_eq!(
        stream
            .iter()
            .map(|e| e.decode::<MeterEvent>().unwrap().unwrap())
            .collect::<Vec<_>>(),
        [MeterEvent::Read { value: 4 }, MeterEvent::Read { value: 5 }]
    );
    assert_eq!(
        store.log_head().await.unwrap(),
        3,
        "the refused command wrote nothing"
    );
    let (m2, version) = Repository::<Meter, _>::new(store.clone())
        .load("m-2")
        .await
        .unwrap();
    assert_eq!((m2.total, version), (6, 1));
}

// ---- every scenario on every backend ---------------------------------------------------------

/// One test per backend, each running every scenario on a fresh store of its own.
macro_rules! scenarios {
    ($($scenario:ident),* $(,)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn on_sqlite_in_memory() {
            $(
                eprintln!("scenario {} on sqlite::memory:", stringify!($scenario));
                $scenario(connect("sqlite::memory:").await.unwrap()).await;
            )*
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn on_sqlite_file() {
            let dir = std::env::temp_dir()
                .join(format!("events-app-backends-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            $(
                let file = dir.join(concat!(stringify!($scenario), ".db"));
                let url = format!("sqlite://{}", file.display());
                eprintln!("scenario {} on {url}", stringify!($scenario));
                $scenario(connect(&url).await.unwrap()).await;
            )*
            std::fs::remove_dir_all(dir).unwrap();
        }

        #[cfg(feature = "postgres")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn on_postgres() {
            $(
                let Some(url) = pg::schema_url(stringify!($scenario)).await else {
                    return;
                };
                eprintln!("scenario {} on postgres", stringify!($scenario));
                let store = connect(&url).await.unwrap();
                store.migrate().await.unwrap();
                $scenario(store).await;
            )*
        }
    };
}

scenarios!(
    views_load_save_update_and_skip_replays,
    views_update_loses_no_concurrent_write,
    aggregate_loads_from_its_snapshot_and_conflicts_write_nothing,
    routed_commands_use_the_connected_store,
);
