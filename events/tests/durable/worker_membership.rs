#![cfg(feature = "sqlite")]
//! Workers of a handler in the store's member list (issue 22): heartbeats, lapses, leaving,
//! the fair share, what `status` shows, and the summary of a worker that held some segments.

use std::sync::Arc;
use std::time::Duration;

use events::store::durable::{
    fair_share, ClaimRequest, Claimed, DurableStore, Heartbeat, Owner, SegmentId,
};
use events::store::EventMetadata;
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use serde::{Deserialize, Serialize};

#[cfg(feature = "postgres")]
use crate::pg;

use crate::backends;
use backends::backends;

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "members.order_placed", aggregate = "Customer")]
struct OrderPlaced {
    #[event(aggregate_id)]
    customer: u32,
}

#[event_handler(durable, name = "members.confirm")]
async fn confirm(_: &OrderPlaced) -> Result<(), String> {
    Ok(())
}

#[test]
fn the_fair_share_is_the_ceiling_of_segments_over_workers() {
    assert_eq!(fair_share(8, 0), 8);
    assert_eq!(fair_share(8, 1), 8);
    assert_eq!(fair_share(8, 2), 4);
    assert_eq!(fair_share(8, 3), 3);
    assert_eq!(fair_share(8, 9), 1);
    assert_eq!(fair_share(1, 2), 1);
}

#[tokio::test]
async fn members_beat_lapse_and_leave_and_status_shows_their_segments() {
    for store in backends("members_beat").await {
        let location = store.location();
        let (a, b) = (Owner::current(), Owner::current());
        let beat = |owner, ttl| Heartbeat {
            handler: "members.confirm",
            owner,
            ttl,
        };
        let long = Duration::from_secs(30);
        let members = store.heartbeat(beat(&a, long)).await.unwrap();
        assert_eq!(members.len(), 1, "{location}");
        assert_eq!(members[0].owner, a);
        assert!(members[0].segments.is_empty(), "{location}");

        // `b` joins for a moment; `a` holds segment 0.
        let members = store
            .heartbeat(beat(&b, Duration::from_millis(300)))
            .await
            .unwrap();
        let owners: Vec<_> = members.iter().map(|m| m.owner.worker).collect();
        assert_eq!(owners, [a.worker, b.worker], "{location}: oldest first");
        let request = ClaimRequest {
            segment: SegmentId {
                handler: "members.confirm",
                segment: 0,
            },
            owner: &a,
            ttl: long,
        };
        let Claimed::Acquired(claim) = store.claim(request).await.unwrap() else {
            panic!("{location}: the claim is free");
        };
        let status = store
            .status("members.confirm", "members.order_placed")
            .await
            .unwrap();
        assert_eq!(status.members.len(), 2, "{location}");
        assert_eq!(status.members[0].segments, [0], "{location}");
        assert_eq!(status.members[0].to_string(), format!("{a}: segments 0"));
        assert_eq!(status.members[1].to_string(), format!("{b}: standby"));

        // `b` stops beating: it lapses. `a` leaves: nobody is left.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let members = store.heartbeat(beat(&a, long)).await.unwrap();
        assert_eq!(members.len(), 1, "{location}: the silent member lapsed");
        store.leave("members.confirm", &a).await.unwrap();
        let status = store
            .status("members.confirm", "members.order_placed")
            .await
            .unwrap();
        assert!(status.members.is_empty(), "{location}");
        store.release(&claim).await.unwrap();
    }
}

/// A worker that held some of a handler's segments (another worker held the others) says what
/// it delivered, not that another worker held the handler the whole run (issue 22: "A worker
/// that delivered 419 events ... prints 'another worker held the handler for the whole run'").
#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_worker_that_held_some_segments_reports_what_it_delivered() {
    let Some(store) = pg::store("members_partial").await else {
        return;
    };
    let store: Arc<dyn DurableStore> = Arc::new(store.with_segments(4));
    for customer in 0..40 {
        store
            .append_event(&OrderPlaced { customer }, EventMetadata::default())
            .await
            .unwrap();
    }
    let other = Owner::current();
    let request = ClaimRequest {
        segment: SegmentId {
            handler: "members.confirm",
            segment: 0,
        },
        owner: &other,
        ttl: Duration::from_secs(30),
    };
    let Claimed::Acquired(claim) = store.claim(request).await.unwrap() else {
        panic!("the claim is free");
    };
    let summary = Worker::new(&Bus::builder().build().unwrap(), &store)
        .handlers(["members.confirm"])
        .drain()
        .await
        .unwrap();
    let delivered = summary.handlers["members.confirm"].delivered;
    assert!(delivered > 0 && delivered < 40, "{summary}");
    assert!(summary.held_elsewhere.is_empty(), "{summary}");
    assert!(
        summary.to_string().starts_with(&format!(
            "members.confirm: {delivered} delivered, 0 failed attempts, 0 dead-lettered, 0 held back; held segments "
        )),
        "{summary}"
    );
    store.release(&claim).await.unwrap();
}

/// A worker that joins while another holds every segment gets its share within the beat
/// interval, and the segments handed over are delivered: with a poll interval far longer than
/// the test, nothing may wait for a poll (the handed-over segments sat idle until the next
/// poll, a minute here).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_worker_takes_its_share_without_waiting_for_a_poll() {
    let Some(store) = pg::store("members_join").await else {
        return;
    };
    let store: Arc<dyn DurableStore> = Arc::new(store.with_segments(4));
    let bus = Bus::builder().build().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let start = |bus: Bus, store: Arc<dyn DurableStore>| {
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            Worker::new(&bus, &store)
                .handlers(["members.confirm"])
                .poll_interval(Duration::from_secs(60))
                .lease_ttl(Duration::from_secs(2))
                .run_until(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
                .unwrap()
        })
    };
    let first = start(bus.clone(), store.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = start(bus.clone(), store.clone());
    tokio::time::sleep(Duration::from_secs(3)).await; // a few beats: the share is 2 each
    for customer in 0..40 {
        store
            .append_event(&OrderPlaced { customer }, EventMetadata::default())
            .await
            .unwrap();
    }
    let head = store.log_head().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = store
            .status("members.confirm", "members.order_placed")
            .await
            .unwrap();
        if status.lag == 0 && status.checkpoint >= head {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "40 events not delivered within 10 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    let delivered =
        |s: &events::worker::Summary| s.handlers.get("members.confirm").map_or(0, |h| h.delivered);
    assert_eq!(
        delivered(&first) + delivered(&second),
        40,
        "{first}\n{second}"
    );
    assert!(
        delivered(&second) > 0,
        "the joining worker delivered nothing: {second}"
    );
}
