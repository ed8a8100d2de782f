//! Views kept by durable handlers: their writes commit or roll back with the checkpoint.

use super::worker::FormSubmitted;
use super::*;

// --- views kept by durable handlers ------------------------------------------------------------

/// A staged write of view `totals`' row `id`.
fn totals_write(id: &str, n: u64, expected: Option<u64>, version: u64) -> ViewWrite {
    ViewWrite {
        view: "totals",
        id: id.into(),
        body: serde_json::json!({ "n": n }),
        expected,
        version,
    }
}

#[tokio::test]
async fn view_writes_commit_or_roll_back_with_the_checkpoint() {
    for store in stores().await {
        view_writes_commit_or_roll_back_with_the_checkpoint_on(store).await;
    }
}

async fn view_writes_commit_or_roll_back_with_the_checkpoint_on(store: Arc<dyn DurableStore>) {
    use events::store::durable::{Record, Settlement};
    let handler = "test.views_settle";
    let first = append(&store, &FormSubmitted { form: 1 }).await;
    let second = append(&store, &FormSubmitted { form: 2 }).await;
    let owner = Owner::current();
    let claim = take(&store, handler, &owner, Duration::from_secs(30)).await;
    let settle = |event: events::store::StoredEvent, views: Vec<ViewWrite>| {
        let (store, claim) = (store.clone(), claim.clone());
        async move {
            let done = Record::Done;
            let views = &views;
            let event = &event;
            let settled = Settlement::New {
                event,
                record: &done,
                views,
                timers: &[],
            };
            store.settle(&claim, settled).await
        }
    };
    let totals = |id: &'static str| {
        let store = store.clone();
        async move { store.load_view("totals", id).await.unwrap() }
    };

    // Committed together.
    settle(first.clone(), vec![totals_write("all", 1, None, 1)])
        .await
        .unwrap();
    assert_eq!(
        totals("all").await,
        Some((serde_json::json!({ "n": 1 }), 1))
    );
    assert_eq!(segment_checkpoint(&store, handler, 0).await, first.position);

    // A write built on a view that changed since (here: one that now exists, or another
    // version) fails the whole settlement: no view written, no checkpoint moved.
    for stale in [None, Some(7)] {
        let writes = vec![
            totals_write("other", 5, None, 1),
            totals_write("all", 2, stale, 2),
        ];
        let err = settle(second.clone(), writes).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::ViewConflict { view, id, expected } if view == "totals" && id == "all" && *expected == stale),
            "{err}"
        );
        assert_eq!(totals("other").await, None, "rolled back with the rest");
        assert_eq!(totals("all").await.map(|(_, v)| v), Some(1));
        assert_eq!(segment_checkpoint(&store, handler, 0).await, first.position);
    }

    // A claim lost to another worker writes no view either.
    store.release(&claim).await.unwrap();
    let other = take(&store, handler, &Owner::current(), Duration::from_secs(30)).await;
    let err = settle(second.clone(), vec![totals_write("all", 2, Some(1), 2)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert_eq!(totals("all").await.map(|(_, v)| v), Some(1));

    // Built on the stored version: committed with the checkpoint.
    let done = Record::Done;
    let views = [totals_write("all", 2, Some(1), 2)];
    let settled = Settlement::New {
        event: &second,
        record: &done,
        views: &views,
        timers: &[],
    };
    store.settle(&other, settled).await.unwrap();
    assert_eq!(
        totals("all").await,
        Some((serde_json::json!({ "n": 2 }), 2))
    );
    assert_eq!(
        segment_checkpoint(&store, handler, 0).await,
        second.position
    );
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "test.tallied", aggregate = "Counter")]
struct Tallied {
    #[event(aggregate_id)]
    counter: u32,
    n: u64,
}

/// The totals over every counter: a view fed by many aggregates.
#[derive(events::sourcing::View, Serialize, Deserialize, Default, Debug, PartialEq)]
#[view(name = "tally")]
struct Tally {
    sum: u64,
}

/// The store the tally handler's "other worker" writes to, and the handler's calls so far.
static TALLY: Mutex<Option<Arc<dyn DurableStore>>> = Mutex::new(None);
static TALLY_CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[event_handler(durable, name = "test.tally", max_attempts = 1)]
async fn tally(e: &Tallied, totals: ViewKeeper<Tally>) -> Result<(), StoreError> {
    totals.modify("all", |t| t.sum += e.n).await?;
    if e.n == 100 {
        return Err(StoreError::Refused("a hundred is refused".into()));
    }
    let calls = TALLY_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if calls == 0 {
        // Meanwhile another worker adds 1000 (retrying its own conflicts with the segments
        // that race for the view on PostgreSQL).
        let store = TALLY.lock().unwrap().clone().expect("set by the test");
        let claim = take(
            &store,
            "test.tally_other",
            &Owner::current(),
            Duration::from_secs(30),
        )
        .await;
        loop {
            let stored = store.load_view("tally", "all").await?;
            let expected = stored.as_ref().map(|(_, version)| *version);
            let sum = stored.map_or(0, |(body, _)| body["sum"].as_u64().unwrap());
            let views = [ViewWrite {
                view: "tally",
                id: "all".into(),
                body: serde_json::json!({ "sum": sum + 1000 }),
                expected,
                version: expected.unwrap_or(0) + 1,
            }];
            let settled = events::store::durable::Settlement::Run {
                last: 0,
                views: &views,
                timers: &[],
            };
            match store.settle(&claim, settled).await {
                Err(StoreError::ViewConflict { .. }) => continue,
                other => break other?,
            }
        }
        store.release(&claim).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_view_changed_under_a_delivery_is_delivered_again_and_a_failed_one_writes_nothing() {
    for store in stores().await {
        a_view_changed_under_a_delivery_on(store).await;
    }
}

async fn a_view_changed_under_a_delivery_on(store: Arc<dyn DurableStore>) {
    *TALLY.lock().unwrap() = Some(store.clone());
    TALLY_CALLS.store(0, std::sync::atomic::Ordering::SeqCst);
    for (counter, n) in [(1, 1), (2, 100), (3, 2)] {
        append(&store, &Tallied { counter, n }).await;
    }
    let summary = Worker::new(&bus(), &store)
        .handlers(["test.tally"])
        .drain()
        .await
        .expect("worker runs");
    let s = &summary.handlers["test.tally"];
    let dead = dead_letters(&store, "test.tally").await;
    let errors: Vec<_> = dead.iter().map(|d| d.last_error.clone()).collect();
    // The first delivery met the other worker's write: not a failure, delivered again on it
    // (on PostgreSQL the counters' segments also race each other for the view).
    assert_eq!(s.delivered, 2, "{summary} {errors:?}");
    assert!(s.view_conflicts >= 1, "{summary}");
    // The refused event failed alone, and its staged write was discarded.
    assert_eq!(s.failed, 1, "{summary}");
    let (body, version) = store.load_view("tally", "all").await.unwrap().unwrap();
    assert_eq!(body, serde_json::json!({ "sum": 1003 }));
    assert_eq!(
        version, 3,
        "the other worker's write, then one per delivered event"
    );
    assert!(TALLY_CALLS.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[event_handler(name = "test.keeper_inline")]
async fn keeper_inline(_: &Tallied, _: ViewKeeper<Tally>) {}

#[tokio::test]
async fn a_view_keeper_outside_a_durable_delivery_fails_and_says_why() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().store(store).build().unwrap();
    let report = bus.dispatch(&Tallied { counter: 1, n: 1 }).await.unwrap();
    let failure = report
        .failures()
        .first()
        .expect("the inline handler failed");
    assert!(
        failure
            .to_string()
            .contains("is given to durable handlers while a worker delivers"),
        "{failure}"
    );
}

/// Totals kept by a batch handler.
#[derive(events::sourcing::View, Serialize, Deserialize, Default, Debug, PartialEq)]
#[view(name = "batch_tally")]
struct BatchTally {
    sum: u64,
    events: u64,
}

#[event_handler(durable, name = "test.batch_tally")]
async fn batch_tally(batch: &[Tallied], totals: ViewKeeper<BatchTally>) -> Result<(), StoreError> {
    for e in batch {
        totals
            .modify("all", |t| {
                t.sum += e.n;
                t.events += 1;
            })
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_batch_handler_stages_its_run_of_view_writes_into_one_settle() {
    for store in stores().await {
        a_batch_handler_stages_its_run_of_view_writes_on(store).await;
    }
}

async fn a_batch_handler_stages_its_run_of_view_writes_on(store: Arc<dyn DurableStore>) {
    for (counter, n) in [(1, 1), (2, 2), (3, 3), (1, 4)] {
        append(&store, &Tallied { counter, n }).await;
    }
    let summary = drain(&bus(), &store, "test.batch_tally").await;
    let s = &summary.handlers["test.batch_tally"];
    assert_eq!((s.delivered, s.failed), (4, 0), "{summary}");
    let (body, version) = store
        .load_view("batch_tally", "all")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, serde_json::json!({ "sum": 10, "events": 4 }));
    assert_eq!(version, 4, "one version per event, whatever the runs");
}
