#![cfg(feature = "postgres")]
//! Durable delivery on PostgreSQL beyond the shared suite (`durable.rs`): a worker never passes
//! a late commit, competing workers split a handler by segment, and a worker whose connections
//! die keeps going.

use crate::pg;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use events::store::durable::{AppendAt, DurableStore};
use events::store::{EventMetadata, NewEvent, PostgresStore, StreamId};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent, Meta};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "shop.order_placed", aggregate = "Customer")]
struct OrderPlaced {
    #[event(aggregate_id)]
    customer: u32,
    order: u32,
}

/// What each handler saw, in order: (customer, order, event id).
type Seen = Vec<(u32, u32, uuid::Uuid)>;
static SEEN: Mutex<BTreeMap<&'static str, Seen>> = Mutex::new(BTreeMap::new());

fn seen(handler: &'static str, e: &OrderPlaced, meta: &Meta) {
    SEEN.lock()
        .unwrap()
        .entry(handler)
        .or_default()
        .push((e.customer, e.order, meta.event_id()));
}

fn taken(handler: &'static str) -> Seen {
    SEEN.lock().unwrap().remove(handler).unwrap_or_default()
}

fn count(handler: &'static str) -> usize {
    SEEN.lock().unwrap().get(handler).map_or(0, Vec::len)
}

#[event_handler(durable, name = "pg.late_commit")]
fn late_commit_handler(e: &OrderPlaced, meta: Meta) {
    seen("pg.late_commit", e, &meta);
}

#[event_handler(durable, name = "pg.rollback")]
fn rollback_handler(e: &OrderPlaced, meta: Meta) {
    seen("pg.rollback", e, &meta);
}

#[event_handler(durable, name = "pg.competing")]
fn competing_handler(e: &OrderPlaced, meta: Meta) {
    seen("pg.competing", e, &meta);
}

#[event_handler(durable, name = "pg.resilient")]
fn resilient_handler(e: &OrderPlaced, meta: Meta) {
    seen("pg.resilient", e, &meta);
}

fn bus() -> Bus {
    Bus::builder().build().expect("bus builds")
}

fn order(customer: u32, order: u32) -> NewEvent {
    NewEvent::new(&OrderPlaced { customer, order }, EventMetadata::default()).unwrap()
}

async fn drain(bus: &Bus, store: &PostgresStore, handler: &str) -> u64 {
    Worker::new(bus, store)
        .handlers([handler])
        .drain()
        .await
        .expect("worker runs")
        .handlers[handler]
        .delivered
}

/// Transaction A appends and stays open; B's append waits for it; a worker run meanwhile
/// delivers nothing and moves no checkpoint. Then A commits (A, then B) or rolls back (B).
/// One segment, so the delivery order across the two customers is the log's order.
async fn late_commit(test: &str, handler: &'static str, commit_a: bool) {
    let Some(store) = pg::store(test).await else {
        return;
    };
    let store = store.with_segments(1);
    let bus = bus();
    let mut a_client = store.client().await.unwrap();
    let a = a_client.transaction().await.unwrap();
    let customer = |id| StreamId {
        aggregate_type: "Customer",
        aggregate_id: id,
    };
    PostgresStore::append_in(&a, customer("1").at(0), vec![order(1, 1)])
        .await
        .unwrap();
    let b = tokio::spawn({
        let store = store.clone();
        async move {
            DurableStore::append_to(&store, AppendAt::End(customer("2")), vec![order(2, 2)]).await
        }
    });
    // B queues behind A's position counter (a hang here means it did not: the store is broken).
    let waiting = store.client().await.unwrap();
    loop {
        let row = waiting
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%events_head%'",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) > 0 || b.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        drain(&bus, &store, handler).await,
        0,
        "nothing to deliver yet"
    );
    let checkpoints = store.checkpoints().await.unwrap();
    assert!(
        checkpoints.iter().all(|c| c.position == 0),
        "no checkpoint passed A: {checkpoints:?}"
    );

    if commit_a {
        a.commit().await.unwrap();
    } else {
        a.rollback().await.unwrap();
    }
    b.await.unwrap().unwrap();
    drain(&bus, &store, handler).await;
    let positions: BTreeMap<uuid::Uuid, u64> = store
        .read_log(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.event_id, e.position))
        .collect();
    let delivered: Vec<(u32, u64)> = taken(handler)
        .iter()
        .map(|(c, _, id)| (*c, positions[id]))
        .collect();
    if commit_a {
        assert_eq!(delivered, [(1, 1), (2, 2)], "A first, then B");
    } else {
        assert_eq!(
            delivered,
            [(2, 1)],
            "B took A's position; the worker moved on"
        );
    }
}

#[tokio::test]
async fn a_worker_never_passes_a_late_commit() {
    late_commit("worker_late_commit", "pg.late_commit", true).await;
}

#[tokio::test]
async fn a_worker_moves_on_after_a_rolled_back_append() {
    late_commit("worker_rollback", "pg.rollback", false).await;
}

/// Two workers on one handler with 4 segments: every event once, each customer in order.
/// (Which worker holds which segment is a race: a worker takes the segments that are free.)
#[tokio::test]
async fn two_workers_share_a_handler_by_segment() {
    let Some(store) = pg::store("competing").await else {
        return;
    };
    const CUSTOMERS: u32 = 20;
    const ORDERS: u32 = 30;
    for o in 1..=ORDERS {
        for c in 0..CUSTOMERS {
            let stream = StreamId {
                aggregate_type: "Customer",
                aggregate_id: &c.to_string(),
            };
            DurableStore::append_to(&store, AppendAt::End(stream), vec![order(c, o)])
                .await
                .unwrap();
        }
    }
    let bus = bus();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = |store: PostgresStore| {
        let bus = bus.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            Worker::new(&bus, &store)
                .handlers(["pg.competing"])
                .poll_interval(Duration::from_millis(20))
                .run_until(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let (one, two) = (worker(store.clone()), worker(store.clone()));
    let total = (CUSTOMERS * ORDERS) as usize;
    while count("pg.competing") < total {
        assert!(!one.is_finished() && !two.is_finished(), "a worker stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(true).unwrap();
    let (a, b) = (one.await.unwrap().unwrap(), two.await.unwrap().unwrap());
    let delivered = a.handlers["pg.competing"].delivered + b.handlers["pg.competing"].delivered;
    assert_eq!(delivered as usize, total, "each event once");
    let mut last = BTreeMap::new();
    for (customer, order, _) in taken("pg.competing") {
        let previous = last.insert(customer, order).unwrap_or(0);
        assert_eq!(order, previous + 1, "customer {customer} in order");
    }
}

/// Every connection of the worker's store is killed while it runs; it backs off, reconnects
/// and delivers what is appended afterwards.
#[tokio::test]
async fn a_worker_whose_connections_die_resumes() {
    let Some(url) = pg::schema_url("resilient").await else {
        return;
    };
    let app = format!("resilient_{}", std::process::id());
    let worker_url = format!("{url}&application_name={app}");
    let store = PostgresStore::connect(&worker_url).await.unwrap();
    store.migrate().await.unwrap();
    let writer = PostgresStore::connect(&url).await.unwrap();
    let append = |o: u32| {
        let writer = writer.clone();
        async move {
            let stream = StreamId {
                aggregate_type: "Customer",
                aggregate_id: "7",
            };
            DurableStore::append_to(&writer, AppendAt::End(stream), vec![order(7, o)])
                .await
                .unwrap();
        }
    };
    let bus = bus();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn({
        let (bus, store) = (bus.clone(), store.clone());
        async move {
            Worker::new(&bus, &store)
                .handlers(["pg.resilient"])
                .poll_interval(Duration::from_millis(50))
                .run_until(async move {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let handled = |order: u32| {
        SEEN.lock()
            .unwrap()
            .get("pg.resilient")
            .is_some_and(|seen| seen.iter().any(|(_, o, _)| *o == order))
    };
    let until = |order: u32| {
        let worker = &worker;
        async move {
            while !handled(order) {
                assert!(!worker.is_finished(), "the worker exited");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    for o in 1..=3 {
        append(o).await;
    }
    until(3).await;
    let killed: i64 = writer
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed > 0, "the worker's connections were found");
    for o in 4..=6 {
        append(o).await;
    }
    until(6).await;
    stop.send(()).unwrap();
    worker.await.unwrap().expect("the worker ends cleanly");
    let mut orders: Vec<u32> = taken("pg.resilient").iter().map(|(_, o, _)| *o).collect();
    // An event whose outcome could not be recorded when the connection died is delivered
    // again (at least once); nothing else repeats, nothing is skipped, order holds.
    let deliveries = orders.len();
    orders.dedup();
    assert_eq!(orders, [1, 2, 3, 4, 5, 6]);
    assert!(deliveries <= 7, "at most the event in flight twice");
}
