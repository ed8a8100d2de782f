#![cfg(feature = "sqlite")]
//! Concurrency inside a worker (issue 22): up to `concurrency` events in flight at once,
//! whatever the number of segments, one at a time and in order per aggregate, and a failure
//! still holds back its aggregate's later events only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::store::durable::DurableStore;
use events::store::{EventMetadata, SqliteStore};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::backends;
use backends::backends;

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "conc.order_placed", aggregate = "Customer")]
struct OrderPlaced {
    #[event(aggregate_id)]
    customer: u32,
    /// The order's number within its customer, from 0.
    n: u32,
}

/// What the handler saw: events in flight now and at most, overlaps of one aggregate, and
/// each customer's order numbers in the order they were handled.
#[derive(Default)]
struct Seen {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    busy: Mutex<BTreeSet<u32>>,
    overlaps: Mutex<Vec<u32>>,
    order: Mutex<BTreeMap<u32, Vec<u32>>>,
}

static SEEN: Mutex<Option<Arc<Seen>>> = Mutex::new(None);
/// The customer whose orders fail (none: `u32::MAX`).
static FAILING: AtomicUsize = AtomicUsize::new(usize::MAX);

#[event_handler(durable, name = "conc.confirm", max_attempts = 5, backoff_ms = 60000)]
async fn confirm(order: &OrderPlaced) -> Result<(), String> {
    let seen = SEEN.lock().unwrap().clone().expect("a test set SEEN");
    if !seen.busy.lock().unwrap().insert(order.customer) {
        seen.overlaps.lock().unwrap().push(order.customer);
    }
    let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    seen.order
        .lock()
        .unwrap()
        .entry(order.customer)
        .or_default()
        .push(order.n);
    seen.in_flight.fetch_sub(1, Ordering::SeqCst);
    seen.busy.lock().unwrap().remove(&order.customer);
    if FAILING.load(Ordering::SeqCst) == order.customer as usize {
        return Err(format!("customer {} refused", order.customer));
    }
    Ok(())
}

/// Appends `per` orders for each of `customers`, interleaved (customer 0's first, customer
/// 1's first, ...).
async fn append(store: &Arc<dyn DurableStore>, customers: u32, per: u32) {
    for n in 0..per {
        for customer in 0..customers {
            store
                .append_event(&OrderPlaced { customer, n }, EventMetadata::default())
                .await
                .unwrap();
        }
    }
}

/// One test at a time touches the handler's statics.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_keeps_up_to_its_concurrency_in_flight_one_per_aggregate_in_order() {
    let _serial = SERIAL.lock().await;
    FAILING.store(usize::MAX, Ordering::SeqCst);
    for (concurrency, test) in [(8, "conc_eight"), (1, "conc_one")] {
        for store in backends(test).await {
            let location = store.location();
            let seen = Arc::new(Seen::default());
            *SEEN.lock().unwrap() = Some(Arc::clone(&seen));
            append(&store, 20, 6).await;
            let summary = Worker::new(&Bus::builder().build().unwrap(), &store)
                .concurrency(concurrency)
                .drain()
                .await
                .unwrap();
            assert_eq!(summary.handlers["conc.confirm"].delivered, 120, "{summary}");
            assert_eq!(
                seen.max_in_flight.load(Ordering::SeqCst),
                concurrency,
                "{location}: at most, and up to, {concurrency} events at once"
            );
            assert!(
                seen.overlaps.lock().unwrap().is_empty(),
                "{location}: two events of one aggregate overlapped: {:?}",
                seen.overlaps.lock().unwrap()
            );
            let order = seen.order.lock().unwrap().clone();
            assert_eq!(order.len(), 20, "{location}");
            for (customer, numbers) in &order {
                assert_eq!(
                    *numbers,
                    (0..6).collect::<Vec<_>>(),
                    "{location}: customer {customer}'s orders in order"
                );
            }
            let status = store.status("conc.confirm", "conc.order_placed").await;
            assert_eq!(
                status.unwrap().lag,
                0,
                "{location}: the checkpoint is at the head"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_holds_back_its_aggregate_only_while_others_run_concurrently() {
    let _serial = SERIAL.lock().await;
    FAILING.store(3, Ordering::SeqCst);
    for store in backends("conc_failure").await {
        let location = store.location();
        let seen = Arc::new(Seen::default());
        *SEEN.lock().unwrap() = Some(Arc::clone(&seen));
        append(&store, 10, 4).await;
        let summary = Worker::new(&Bus::builder().build().unwrap(), &store)
            .concurrency(6)
            .drain()
            .await
            .unwrap();
        let s = summary.handlers["conc.confirm"];
        assert_eq!(
            (s.delivered, s.failed, s.held),
            (36, 1, 3),
            "{location}: {summary}"
        );
        let failing = seen.order.lock().unwrap()[&3].clone();
        assert_eq!(failing, [0], "{location}");
        assert!(seen.max_in_flight.load(Ordering::SeqCst) > 1, "{location}");
        let overlaps = seen.overlaps.lock().unwrap().clone();
        assert!(overlaps.is_empty(), "{location}: {overlaps:?}");
        let status = store
            .status("conc.confirm", "conc.order_placed")
            .await
            .unwrap();
        assert_eq!(status.lag, 0, "{location}: {status:?}");
    }
    FAILING.store(usize::MAX, Ordering::SeqCst);
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "conc.page_viewed", aggregate = "Page")]
struct PageViewed {
    #[event(aggregate_id)]
    page: u32,
}

static BATCHES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "conc.count_views")]
fn count_views(views: &[PageViewed]) -> Result<(), String> {
    BATCHES.lock().unwrap().push(views.len());
    Ok(())
}

/// `batch_size` is how many events a poll reads: a batch handler's calls take at most that.
#[tokio::test]
async fn the_batch_size_is_what_a_poll_reads() {
    let store = SqliteStore::open_in_memory().expect("store opens");
    for page in 0..50 {
        store
            .append_event(&PageViewed { page }, EventMetadata::default())
            .unwrap();
    }
    let summary = Worker::new(&Bus::builder().build().unwrap(), &store)
        .handlers(["conc.count_views"])
        .batch_size(7)
        .drain()
        .await
        .unwrap();
    assert_eq!(summary.handlers["conc.count_views"].delivered, 50);
    let batches = std::mem::take(&mut *BATCHES.lock().unwrap());
    assert_eq!(batches, [7, 7, 7, 7, 7, 7, 7, 1], "{summary}");
}
