//! The durable gauges (`events::worker::metrics`) and the store's `lag_since` they rest on.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use events::store::durable::DurableStore;
use events::store::{EventMetadata, SqliteStore, StoredEvent};
use events::worker::metrics::record_durable_gauges;
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "gauges.parcel_sent", aggregate = "Parcel")]
struct ParcelSent {
    #[event(aggregate_id)]
    parcel: u32,
    /// A parcel to nowhere is refused by the carrier, for good.
    to: String,
}

#[event_handler(durable, name = "gauges.notify_carrier", max_attempts = 1)]
fn notify_carrier(e: &ParcelSent) -> Result<(), String> {
    if e.to.is_empty() {
        return Err(format!("parcel {} has no address", e.parcel));
    }
    Ok(())
}

const HANDLER: &str = "gauges.notify_carrier";

/// Each gauge's value for the handler, after one sample.
fn sample(store: &Arc<dyn DurableStore>) -> [(String, f64); 5] {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(record_durable_gauges(store.as_ref()))
    })
    .expect("the store answers");
    let gauges = snapshotter.snapshot().into_vec();
    [
        "events_durable_lag_events",
        "events_durable_lag_seconds",
        "events_durable_retrying",
        "events_durable_dead_letters",
        "events_durable_held_back",
    ]
    .map(|name| {
        let value = gauges
            .iter()
            .find(|(key, _, _, _)| {
                key.kind() == MetricKind::Gauge
                    && key.key().name() == name
                    && key.key().labels().any(|l| l.value() == HANDLER)
            })
            .map(|(_, _, _, value)| match value {
                DebugValue::Gauge(v) => v.into_inner(),
                other => panic!("{name} is not a gauge: {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {name} for {HANDLER} in {gauges:?}"));
        (name.to_owned(), value)
    })
}

fn send(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<dyn DurableStore>,
    parcel: u32,
    to: &str,
) -> StoredEvent {
    let event = ParcelSent {
        parcel,
        to: to.to_owned(),
    };
    runtime
        .block_on(store.append_event(&event, EventMetadata::default()))
        .unwrap()
}

#[test]
fn gauges_follow_the_lag_and_the_pending_failures() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn DurableStore> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let bus = Bus::builder().build().unwrap();
    let drain = || {
        runtime
            .block_on(Worker::new(&bus, &store).handlers([HANDLER]).drain())
            .unwrap()
    };
    let status = || {
        runtime
            .block_on(store.status(HANDLER, ParcelSent::NAME))
            .unwrap()
    };

    send(&runtime, &store, 1, "Lyon");
    drain();
    assert_eq!(status().lag_since, None, "no lag, no age");
    let sent_at = SystemTime::now();
    let refused = send(&runtime, &store, 2, ""); // dead at its first attempt
    send(&runtime, &store, 2, "Nice"); // held back behind it
    send(&runtime, &store, 3, "Pau");

    // Three events behind; the oldest is the first after the checkpoint, not parcel 1's.
    // (The store keeps times to the microsecond.)
    let micros =
        |t: Option<SystemTime>| t.map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_micros());
    assert_eq!(
        micros(status().lag_since),
        micros(Some(refused.occurred_at))
    );
    let [lag, age, retrying, dead, held] = sample(&store);
    assert_eq!(lag.1, 3.0, "{lag:?}");
    let since_sent = sent_at.elapsed().unwrap().as_secs_f64();
    assert!(
        age.1 > 0.0 && age.1 <= since_sent + 1e-6,
        "{age:?}, sent {since_sent} s ago"
    );
    assert_eq!((retrying.1, dead.1, held.1), (0.0, 0.0, 0.0));

    drain();
    assert_eq!(status().lag_since, None);
    let [lag, age, retrying, dead, held] = sample(&store);
    assert_eq!(
        [lag.1, age.1, retrying.1, dead.1, held.1],
        [0.0, 0.0, 0.0, 1.0, 1.0],
        "parcel 2's refusal is dead and holds its next event back"
    );
}
