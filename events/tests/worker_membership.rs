#![cfg(feature = "sqlite")]
//! Workers of a handler in the store's member list (issue 22): heartbeats, lapses, leaving,
//! the fair share, what `status` shows, and the summary of a worker that held some segments.

use std::sync::Arc;
use std::time::Duration;

use events::store::durable::{
    fair_share, ClaimRequest, Claimed, DurableStore, Heartbeat, Owner, SegmentId,
};
use events::store::{EventMetadata, SqliteStore};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use serde::{Deserialize, Serialize};

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

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

async fn backends(test: &str) -> Vec<Arc<dyn DurableStore>> {
    let sqlite: Arc<dyn DurableStore> =
        Arc::new(SqliteStore::open_in_memory().expect("store opens"));
    #[allow(unused_mut)]
    let mut stores = vec![sqlite];
    #[cfg(feature = "postgres")]
    if let Some(store) = pg::store(test).await {
        stores.push(Arc::new(store.with_segments(4)));
    }
    #[cfg(not(feature = "postgres"))]
    let _ = test;
    stores
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
