#![cfg(feature = "sqlite")]
//! A bus given its store records the events that have durable handlers when they are
//! dispatched, with the event id its inline handlers saw; the outbox call publishes into the
//! caller's transaction; an event that cannot be stored (no store, a sync `publish`) is an
//! `Err` and nothing runs, never a "skipped" line (issue 9, items 2 and 13; issue 21).

use std::sync::Mutex;

use events::store::{rusqlite, EventStore, SqliteStore};
use events::worker::Worker;
use events::{event_handler, BoxError, Bus, DomainEvent, Meta, NotPublished};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "orders.order_placed", aggregate = "Order")]
struct OrderPlaced {
    #[event(aggregate_id)]
    order: u32,
}

/// (handler, order, meta) of every call.
static SEEN: Mutex<Vec<(&str, u32, Meta)>> = Mutex::new(Vec::new());

fn seen(order: u32) -> Vec<(&'static str, Meta)> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(_, o, _)| *o == order)
        .map(|(h, _, m)| (*h, m.clone()))
        .collect()
}

#[event_handler(name = "orders.confirm_inline")]
fn confirm_inline(e: &OrderPlaced, meta: Meta) {
    SEEN.lock().unwrap().push(("inline", e.order, meta));
}

#[event_handler(durable, name = "orders.send_confirmation")]
fn send_confirmation(e: &OrderPlaced, meta: Meta) {
    SEEN.lock().unwrap().push(("durable", e.order, meta));
}

async fn deliver(bus: &Bus, store: &SqliteStore) {
    let summary = Worker::new(bus, store)
        .handlers(["orders.send_confirmation"])
        .drain()
        .await
        .expect("worker runs");
    assert!(
        summary.handlers.values().all(|h| h.failed == 0),
        "{summary}"
    );
}

fn meta_of(order: u32, handler: &str) -> Meta {
    let seen = seen(order);
    let found = seen.iter().find(|(h, _)| *h == handler);
    found
        .unwrap_or_else(|| panic!("{handler} did not see order {order}: {seen:?}"))
        .1
        .clone()
}

#[tokio::test]
async fn a_sync_publish_refuses_an_event_with_durable_handlers_and_runs_nothing() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().store(store.clone()).build().unwrap();

    let err = bus.publish(&OrderPlaced { order: 6 }).unwrap_err();
    assert!(
        matches!(err.kind(), NotPublished::NeedsAwait { handlers, .. } if handlers == &["orders.send_confirmation"]),
        "{err}"
    );
    assert!(err.to_string().contains("dispatch(&event).await"), "{err}");
    assert_eq!(store.head().unwrap(), 0, "nothing stored");
    assert!(seen(6).is_empty(), "no handler ran");
}

#[tokio::test]
async fn dispatch_stores_the_event_with_the_id_the_inline_handlers_saw() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().store(store.clone()).build().unwrap();

    let report = bus.dispatch(&OrderPlaced { order: 1 }).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(store.head().unwrap(), 1, "the event is in the log");

    deliver(&bus, &store).await;
    let (inline, durable) = (meta_of(1, "inline"), meta_of(1, "durable"));
    assert_eq!(durable.event_id(), inline.event_id());
    assert_eq!(durable.correlation_id(), inline.correlation_id());
    // The durable copy knows its aggregate, sequence and position (item 13).
    assert_eq!(durable.aggregate_type(), Some("Order"));
    assert_eq!(durable.aggregate_id(), Some("1"));
    assert_eq!(durable.sequence(), Some(1));
    assert_eq!(durable.position(), Some(1));
    assert_eq!(inline.aggregate_id(), Some("1"));
    assert_eq!(inline.position(), None);
}

#[tokio::test]
async fn dispatch_stores_the_event_too_and_a_stored_event_is_not_stored_again() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().store(store.clone()).build().unwrap();

    let report = bus.dispatch(&OrderPlaced { order: 2 }).await.unwrap();
    assert!(report.is_ok(), "{report}");
    let report = bus.dispatch(&OrderPlaced { order: 2 }).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(store.head().unwrap(), 2);

    // Replaying the log through the bus (metadata with a position) stores nothing.
    let stored = store.read_all(0, 100).await.unwrap();
    let report = bus
        .publish_with(&OrderPlaced { order: 2 }, stored[1].meta::<OrderPlaced>())
        .unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(store.head().unwrap(), 2);

    deliver(&bus, &store).await;
    let sequences: Vec<_> = seen(2)
        .iter()
        .filter(|(h, _)| *h == "durable")
        .map(|(_, m)| m.sequence())
        .collect();
    assert_eq!(sequences, [Some(1), Some(2)]);
}

#[tokio::test]
async fn without_a_store_an_event_with_durable_handlers_is_an_error_and_nothing_runs() {
    let bus = Bus::builder().build().unwrap();
    let err = bus.dispatch(&OrderPlaced { order: 3 }).await.unwrap_err();
    assert!(matches!(err.kind(), NotPublished::NoStore { .. }), "{err}");
    assert!(err.to_string().contains("Bus::builder().store("), "{err}");
    assert!(seen(3).is_empty(), "the inline handler did not run either");
}

#[tokio::test]
async fn the_outbox_commits_state_and_event_together_then_runs_the_inline_handlers() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().store(store.clone()).build().unwrap();
    store
        .transaction(|tx| Ok::<_, BoxError>(tx.execute_batch("CREATE TABLE orders (id INTEGER)")?))
        .unwrap();

    // A failed transaction: no row, no event, no handler.
    let failed = store
        .outbox(&bus, |tx, outbox| {
            tx.execute("INSERT INTO orders (id) VALUES (4)", [])?;
            outbox.publish(OrderPlaced { order: 4 });
            assert!(seen(4).is_empty(), "inline handlers wait for the commit");
            Err::<(), BoxError>("payment declined".into())
        })
        .await;
    assert!(failed.is_err());
    assert_eq!(store.head().unwrap(), 0);
    assert!(seen(4).is_empty());

    let (count, reports) = store
        .outbox(&bus, |tx: &rusqlite::Transaction<'_>, outbox| {
            tx.execute("INSERT INTO orders (id) VALUES (5)", [])?;
            outbox.publish(OrderPlaced { order: 5 });
            assert!(seen(5).is_empty(), "inline handlers wait for the commit");
            let count: i64 = tx.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))?;
            Ok::<_, BoxError>(count)
        })
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].is_ok(), "{}", reports[0]);
    assert_eq!(
        store.head().unwrap(),
        1,
        "stored once, not again by the inline publish"
    );
    let stored = store.read_all(0, 100).await.unwrap();
    assert_eq!(stored[0].event_id, meta_of(5, "inline").event_id());
}

#[test]
fn store_errors_debug_as_their_message() {
    let err = events::store::StoreError::Conflict {
        aggregate_type: "Order".into(),
        aggregate_id: "7".into(),
        expected: 1,
        actual: 2,
    };
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(format!("{err:?}").starts_with("concurrent append to Order `7`"));
}

#[derive(DomainEvent, Debug, Clone)]
#[event(name = "orders.checkout_confirmed")]
struct CheckoutConfirmed {
    order: u32,
}

#[event_handler(name = "orders.place_after_checkout", publishes(OrderPlaced))]
fn place_after_checkout(e: &CheckoutConfirmed, publisher: events::Publisher) {
    publisher.publish(OrderPlaced { order: e.order });
}

#[tokio::test]
async fn a_durable_follow_up_is_stored_under_dispatch_and_reported_failed_under_publish() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().store(store.clone()).build().unwrap();

    // A sync publish cannot store the follow-up: its durable handler is reported failed.
    let report = bus.publish(&CheckoutConfirmed { order: 7 }).unwrap();
    let follow_up = &report.follow_ups()[0];
    let failure = &follow_up.failures()[0];
    assert_eq!(failure.handler(), "orders.send_confirmation");
    assert!(
        matches!(failure.cause(), events::FailureCause::NotStored(why) if why.contains("dispatch(&event).await")),
        "{failure}"
    );
    assert!(!report.is_ok());
    assert_eq!(store.head().unwrap(), 0);

    let report = bus.dispatch(&CheckoutConfirmed { order: 8 }).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(store.head().unwrap(), 1, "the follow-up is in the log");
}
