//! Loading an event-sourced aggregate whose stream holds 100,000 events (SQLite file, WAL):
//! replayed from its first event, and from a snapshot (taken every 1,000 events, so the load
//! reads the snapshot and no event after it).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use events::sourcing::Snapshots;
use events::store::{EventMetadata, SqliteStore};
use events::{DomainEvent, EventSet, EventSourced, Handle, Repository};
use serde::{Deserialize, Serialize};

const EVENTS: u64 = 100_000;

#[derive(DomainEvent, EventSet, Serialize, Deserialize, Clone, Debug, PartialEq)]
enum AccountEvent {
    Deposited { amount: u64, balance: u64 },
}

/// The same account twice: one type without snapshots, one with.
macro_rules! account {
    ($name:ident, $type:literal, $snapshots:expr) => {
        #[derive(Default, Serialize, Deserialize)]
        struct $name {
            balance: u64,
            deposits: u64,
        }

        impl EventSourced for $name {
            const TYPE: &'static str = $type;
            type Event = AccountEvent;
            fn apply(&mut self, AccountEvent::Deposited { balance, .. }: &AccountEvent) {
                self.balance = *balance;
                self.deposits += 1;
            }
            fn snapshots() -> Option<Snapshots<Self>> {
                $snapshots
            }
        }

        impl Handle<Deposit> for $name {
            type Error = String;
            type Services = ();
            async fn handle(
                &self,
                Deposit(amount): Deposit,
                _: &(),
            ) -> Result<Vec<AccountEvent>, String> {
                Ok(vec![AccountEvent::Deposited {
                    amount,
                    balance: self.balance + amount,
                }])
            }
        }
    };
}

#[derive(Clone)]
struct Deposit(u64);

account!(Plain, "Plain", None);
account!(Snapshotted, "Snapshotted", Some(Snapshots::every(1_000)));

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

/// A stream of `EVENTS` deposits, the last one through `execute` (which takes the snapshot).
async fn fill<A>(repo: &Repository<A, SqliteStore>)
where
    A: EventSourced<Event = AccountEvent> + Handle<Deposit, Services = ()>,
    <A as Handle<Deposit>>::Error: std::fmt::Debug,
{
    let mut version = 0;
    while version < EVENTS - 1 {
        let batch = (version + 1..=(version + 1_000).min(EVENTS - 1))
            .map(|n| AccountEvent::Deposited {
                amount: 1,
                balance: n,
            })
            .collect();
        version = repo
            .append("a-1", version, batch, EventMetadata::default())
            .await
            .unwrap()
            .version;
    }
    // Nothing listens: the committed events need no dispatch.
    let _committed = repo
        .execute("a-1", Deposit(1), &(), EventMetadata::default())
        .await
        .unwrap();
}

fn load(c: &mut Criterion) {
    let rt = runtime();
    let path: PathBuf =
        std::env::temp_dir().join(format!("events-bench-snapshots-{}.db", std::process::id()));
    let store = SqliteStore::open(&path).expect("store");
    let plain = Repository::<Plain, _>::new(store.clone());
    let snapshotted = Repository::<Snapshotted, _>::new(store);
    rt.block_on(fill(&plain));
    rt.block_on(fill(&snapshotted));

    let mut group = c.benchmark_group("snapshots");
    group.sample_size(10);
    group.bench_function("load 100k events/replayed", |b| {
        b.iter(|| {
            let (account, version) = rt.block_on(plain.load("a-1")).unwrap();
            assert_eq!((account.deposits, version), (EVENTS, EVENTS));
            black_box(account.balance)
        })
    });
    group.bench_function("load 100k events/from snapshot", |b| {
        b.iter(|| {
            let (account, version) = rt.block_on(snapshotted.load("a-1")).unwrap();
            assert_eq!((account.balance, version), (EVENTS, EVENTS));
            black_box(account.balance)
        })
    });
    group.finish();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

criterion_group!(benches, load);
criterion_main!(benches);
