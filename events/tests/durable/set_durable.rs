#![cfg(feature = "sqlite")]
//! A durable handler of a derived event set's enum: it receives the events stored under each
//! variant's name (with the variant's name in its `Meta`), and dispatching a stored variant on
//! a bus without a store of its own reports nothing skipped (the event is in the log already).

use std::sync::Mutex;

use events::store::{EventMetadata, EventStore, SqliteStore, StreamId};
use events::worker::{handler_status, Worker};
use events::{event_handler, Bus, DomainEvent, EventSet, Meta};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, EventSet, Serialize, Deserialize, Debug, Clone, PartialEq)]
enum ParcelEvent {
    Sent {
        to: String,
    },
    #[event_set(name = "parcel.delivered", version = 2)]
    Delivered,
}

static SEEN: Mutex<Vec<(ParcelEvent, String, u64)>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "set_durable.track")]
fn track(event: &ParcelEvent, meta: Meta) {
    let seen = (
        event.clone(),
        meta.event_name().to_owned(),
        meta.sequence().unwrap(),
    );
    SEEN.lock().unwrap().push(seen);
}

#[tokio::test]
async fn a_durable_handler_of_an_event_set_enum_gets_every_variant() {
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().build().unwrap();
    let events = [
        ParcelEvent::Sent { to: "Ada".into() },
        ParcelEvent::Delivered,
    ];
    let new = events
        .iter()
        .map(|e| e.to_new_event(EventMetadata::default()).unwrap())
        .collect();
    let stream = StreamId {
        aggregate_type: "parcel",
        aggregate_id: "p-1",
    };
    let stored = store.append(stream.at(0), new).await.unwrap();

    // Already in the log: the bus has nothing to store and skips no handler.
    let event = stored[1].decode::<ParcelEvent>().unwrap().unwrap();
    let report = event.dispatch_stored(&bus, &stored[1]).await;
    assert!(report.skipped().is_empty(), "{:?}", report.skipped());

    // Its lag (for `status`, the gauges, replay) counts the variants' events, oldest first.
    let name = <ParcelEvent as DomainEvent>::NAME;
    let before = handler_status(&store, "set_durable.track", name)
        .await
        .unwrap();
    assert_eq!(before.lag, 2, "{before:?}");
    assert!(before.lag_since.is_some(), "{before:?}");

    let summary = Worker::new(&bus, &store).drain().await.unwrap();
    assert!(summary.to_string().contains("2 delivered"), "{summary}");
    let after = handler_status(&store, "set_durable.track", name)
        .await
        .unwrap();
    assert_eq!((after.lag, after.lag_since), (0, None));
    assert_eq!(
        *SEEN.lock().unwrap(),
        [
            (events[0].clone(), "Sent".to_owned(), 1),
            (events[1].clone(), "parcel.delivered".to_owned(), 2),
        ]
    );
}
