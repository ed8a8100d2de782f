#![cfg(feature = "postgres")]
//! The PostgreSQL view repository against a real server: load, save, update by sequence,
//! the transactional forms, and a view kept live by a durable handler of an event set's enum,
//! through a replay.

#[path = "support/postgres.rs"]
mod pg;

use events::sourcing::{AggregateView, EventAt, PostgresViews, View};
use events::store::durable::{DurableStore, OnReset, Owner, Rewind};
use events::store::{EventMetadata, EventStore, PostgresStore, StoreError, StreamId};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent, EventSet, Meta, Res};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, EventSet, Serialize, Deserialize, Debug, Clone)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: i64 },
}

#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Balance {
    owner: String,
    balance: i64,
    deposits: u32,
}

impl View for Balance {
    const NAME: &'static str = "balance";
}

impl AggregateView for Balance {
    type Event = AccountEvent;
    fn update(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner.clone_from(owner),
            AccountEvent::Deposited { amount } => {
                self.balance += amount;
                self.deposits += 1;
            }
        }
    }
}

#[event_handler(durable, name = "pg_views.balance")]
async fn keep_balance(
    event: &AccountEvent,
    meta: Meta,
    balances: Res<PostgresViews<Balance>>,
) -> Result<(), StoreError> {
    balances.update_with(event, &meta).await.map(drop)
}

fn balance(owner: &str, balance: i64, deposits: u32) -> Balance {
    Balance {
        owner: owner.into(),
        balance,
        deposits,
    }
}

#[tokio::test]
async fn views_are_loaded_saved_and_updated_once_per_sequence() {
    let Some(store) = pg::store("views_crud").await else {
        return;
    };
    let views = PostgresViews::<Balance>::new(&store);
    assert_eq!(views.load("a").await.unwrap(), None);
    let at = |sequence| EventAt { id: "a", sequence };
    let deposit = |v: &mut Balance| v.balance += 5;
    assert!(views.update(at(1), deposit).await.unwrap());
    assert!(
        !views.update(at(1), deposit).await.unwrap(),
        "sequence 1 is in"
    );
    assert!(views.update(at(2), deposit).await.unwrap());
    assert_eq!(
        views.load("a").await.unwrap(),
        Some((balance("", 10, 0), 2))
    );

    views.save("b", &balance("Bo", 1, 1), 7).await.unwrap();
    assert_eq!(
        views.load("b").await.unwrap(),
        Some((balance("Bo", 1, 1), 7))
    );

    // Inside the caller's transaction: nothing is seen until it commits, nothing after a
    // rollback.
    let mut client = store.client().await.unwrap();
    let tx = client.transaction().await.unwrap();
    assert!(
        PostgresViews::<Balance>::update_in(&tx, at(3), |v| v.balance = 0)
            .await
            .unwrap()
    );
    PostgresViews::<Balance>::save_in(&tx, "c", &balance("Cy", 0, 0), 1)
        .await
        .unwrap();
    let in_tx = PostgresViews::<Balance>::load_in(&tx, "a").await.unwrap();
    assert_eq!(in_tx, Some((balance("", 0, 0), 3)));
    tx.rollback().await.unwrap();
    assert_eq!(
        views.load("a").await.unwrap(),
        Some((balance("", 10, 0), 2))
    );
    assert_eq!(views.load("c").await.unwrap(), None);

    views.clear().await.unwrap();
    assert_eq!(views.load("a").await.unwrap(), None);
    assert_eq!(views.load("b").await.unwrap(), None);
}

/// The operator's replay of the handler: every event again.
async fn replay(store: &PostgresStore) {
    let durable: &dyn DurableStore = store;
    let owner = Owner::current();
    durable
        .reset_handler(
            "pg_views.balance",
            Rewind {
                after: 0,
                failures: OnReset::KeepFailures,
            },
            &owner,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_durable_handler_keeps_a_view_live_and_a_replay_applies_nothing_twice() {
    let Some(store) = pg::store("views_live").await else {
        return;
    };
    let balances = PostgresViews::<Balance>::new(&store);
    let bus = Bus::builder().resource(balances.clone()).build().unwrap();
    for (id, owner) in [("acc-1", "Ada"), ("acc-2", "Bob")] {
        let events = [
            AccountEvent::Opened {
                owner: owner.into(),
            },
            AccountEvent::Deposited { amount: 10 },
            AccountEvent::Deposited { amount: 32 },
        ];
        let new = events
            .iter()
            .map(|e| e.to_new_event(EventMetadata::default()).unwrap())
            .collect();
        let stream = StreamId {
            aggregate_type: "account",
            aggregate_id: id,
        };
        store.append(stream.at(0), new).await.unwrap();
    }
    let drain = || {
        Worker::new(&bus, &store)
            .handlers(["pg_views.balance"])
            .drain()
    };
    let summary = drain().await.unwrap();
    assert!(summary.to_string().contains("6 delivered"), "{summary}");
    assert_eq!(
        balances.load("acc-1").await.unwrap(),
        Some((balance("Ada", 42, 2), 3))
    );
    assert_eq!(
        balances.load("acc-2").await.unwrap(),
        Some((balance("Bob", 42, 2), 3))
    );

    // An operator's replay delivers every event again: the views hold them already.
    replay(&store).await;
    let summary = drain().await.unwrap();
    assert!(summary.to_string().contains("6 delivered"), "{summary}");
    assert_eq!(
        balances.load("acc-1").await.unwrap(),
        Some((balance("Ada", 42, 2), 3))
    );

    // A rebuild: clear, then replay.
    balances.clear().await.unwrap();
    replay(&store).await;
    drain().await.unwrap();
    assert_eq!(
        balances.load("acc-2").await.unwrap(),
        Some((balance("Bob", 42, 2), 3))
    );
}
