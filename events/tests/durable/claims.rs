//! Claims and fencing: a worker that lost its claim cannot settle or reset; checkpoints are
//! renamed and reset under claims.

use super::worker::FormSubmitted;
use super::*;

// --- claims and fencing ----------------------------------------------------------------------

#[tokio::test]
async fn a_claim_lost_to_another_worker_cannot_settle_or_reset() {
    for store in stores().await {
        a_claim_lost_to_another_worker_cannot_settle_or_reset_on(store).await;
    }
}

async fn a_claim_lost_to_another_worker_cannot_settle_or_reset_on(store: Arc<dyn DurableStore>) {
    use events::store::durable::{Record, Settlement};
    let handler = "test.fenced";
    let event = append(&store, &FormSubmitted { form: 1 }).await;
    let (a, b) = (Owner::current(), Owner::current());
    let first = take(&store, handler, &a, Duration::from_millis(1)).await;
    // A renewal by the same owner keeps the token.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let renewed = take(&store, handler, &a, Duration::from_millis(1)).await;
    assert_eq!(renewed.token, first.token);
    // A stalls past its lease; B takes the handler over with a newer token.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let taken = take(&store, handler, &b, Duration::from_secs(30)).await;
    assert!(taken.token > first.token);
    // A resumes: it cannot record anything, nor move the checkpoint.
    let done = Record::Done;
    let deliver = |claim: Claim| {
        let (store, event, done) = (store.clone(), event.clone(), done.clone());
        async move {
            let settled = Settlement::New {
                event: &event,
                record: &done,
                views: &[],
                timers: &[],
            };
            store.settle(&claim, settled).await
        }
    };
    let err = deliver(first.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    let err = store
        .reset_checkpoint(
            &first,
            Rewind {
                after: 0,
                failures: OnReset::KeepFailures,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert_eq!(segment_checkpoint(&store, handler, 0).await, 0);
    // A sees who holds it now.
    let Claimed::HeldBy(lease) = store
        .claim(ClaimRequest {
            segment: SegmentId {
                handler,
                segment: 0,
            },
            owner: &a,
            ttl: Duration::from_secs(30),
        })
        .await
        .unwrap()
    else {
        panic!("B holds it");
    };
    assert_eq!(lease.owner, b);
    // B settles fine; after B releases, A gets a newer token still.
    deliver(taken.clone()).await.unwrap();
    store.release(&taken).await.unwrap();
    let again = take(&store, handler, &a, Duration::from_secs(30)).await;
    assert!(again.token > taken.token);
    assert_eq!(segment_checkpoint(&store, handler, 0).await, event.position);
}

#[tokio::test]
async fn renaming_a_checkpoint_moves_its_position_and_failures_and_refuses_conflicts() {
    for store in stores().await {
        renaming_a_checkpoint_on(store).await;
    }
}

async fn renaming_a_checkpoint_on(store: Arc<dyn DurableStore>) {
    use events::store::durable::{Record, Settlement};
    let first = append(&store, &FormSubmitted { form: 1 }).await;
    let owner = Owner::current();
    let ttl = Duration::from_secs(30);
    let old = take(&store, "test.old_name", &owner, ttl).await;
    let retry = Record::Retry {
        attempts: 1,
        at: std::time::SystemTime::now(),
        error: "down".into(),
    };
    store
        .settle(
            &old,
            Settlement::New {
                event: &first,
                record: &retry,
                views: &[],
                timers: &[],
            },
        )
        .await
        .unwrap();
    let refused = store
        .rename_checkpoint("test.old_name", "test.new_name")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Refused(m) if m.contains("is being delivered by pid")),
        "{refused}"
    );
    store.release(&old).await.unwrap();
    let taken = take(&store, "test.taken_name", &owner, ttl).await;
    store.release(&taken).await.unwrap();
    let refused = store
        .rename_checkpoint("test.old_name", "test.taken_name")
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "a checkpoint named `test.taken_name` already exists; reset or rename it first"
    );
    store
        .rename_checkpoint("test.old_name", "test.new_name")
        .await
        .unwrap();
    let checkpoints: Vec<_> = store
        .checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.handler, c.position))
        .collect();
    assert!(checkpoints.contains(&("test.new_name".into(), first.position)));
    assert!(!checkpoints.iter().any(|(h, _)| h == "test.old_name"));
    let failures = store.failures(Some("test.new_name")).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].status, FailureStatus::Retrying);
    let missing = store
        .rename_checkpoint("test.old_name", "test.other")
        .await
        .unwrap_err();
    assert!(missing
        .to_string()
        .contains("no checkpoint named `test.old_name`"));
}

#[tokio::test]
async fn a_worker_that_never_gets_the_claim_names_the_holder() {
    for store in stores().await {
        // Every segment: a worker that holds any segment of a handler delivers it.
        let holder = Owner::current();
        let mut claims = Vec::new();
        for segment in 0..store.segments() {
            let request = ClaimRequest {
                segment: SegmentId {
                    handler: "test.store_submission",
                    segment,
                },
                owner: &holder,
                ttl: Duration::from_secs(30),
            };
            match store.claim(request).await.unwrap() {
                Claimed::Acquired(claim) => claims.push(claim),
                Claimed::HeldBy(lease) => panic!("held by {lease}"),
            }
        }
        let summary = Worker::new(&bus(), &store)
            .handlers(["test.store_submission"])
            .drain()
            .await
            .unwrap();
        let lease = summary.held_elsewhere["test.store_submission"]
            .as_ref()
            .expect("the drain saw the holder's lease");
        assert_eq!(lease.owner, holder);
        assert!(
            summary.to_string().starts_with(&format!(
                "test.store_submission: not delivered by this worker: another worker holds it: pid {} on ",
                std::process::id()
            )),
            "{summary}"
        );
        for claim in &claims {
            store.release(claim).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_reset_never_moves_forward_nor_overwrites_a_pending_failure() {
    for store in stores().await {
        a_reset_never_moves_forward_on(store).await;
    }
}

async fn a_reset_never_moves_forward_on(store: Arc<dyn DurableStore>) {
    use events::store::durable::{Record, Settlement};
    let handler = "test.reset_contract";
    let mut stored = Vec::new();
    for form in 1..=3 {
        stored.push(append(&store, &FormSubmitted { form }).await);
    }
    let claim = take(&store, handler, &Owner::current(), Duration::from_secs(30)).await;
    let settle = |record: Record, i: usize| {
        let (store, claim, e) = (store.clone(), claim.clone(), stored[i].clone());
        async move {
            let new = Settlement::New {
                event: &e,
                record: &record,
                views: &[],
                timers: &[],
            };
            store.settle(&claim, new).await.unwrap();
        }
    };
    settle(Record::Done, 0).await;
    let retry = Record::Retry {
        attempts: 1,
        at: std::time::SystemTime::now() + Duration::from_secs(3600),
        error: "down".into(),
    };
    settle(retry, 1).await;
    assert_eq!(segment_checkpoint(&store, handler, 0).await, 2);

    // Forward: nothing is skipped. Past the head: refused.
    store
        .reset_checkpoint(
            &claim,
            Rewind {
                after: 3,
                failures: OnReset::KeepFailures,
            },
        )
        .await
        .unwrap();
    assert_eq!(segment_checkpoint(&store, handler, 0).await, 2);
    let err = store
        .reset_checkpoint(
            &claim,
            Rewind {
                after: 4,
                failures: OnReset::KeepFailures,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::PastHead {
                position: 5,
                head: 3
            }
        ),
        "{err}"
    );

    // Back to the start, keeping failures: the retry survives being held on the way.
    store
        .reset_checkpoint(
            &claim,
            Rewind {
                after: 0,
                failures: OnReset::KeepFailures,
            },
        )
        .await
        .unwrap();
    assert_eq!(segment_checkpoint(&store, handler, 0).await, 0);
    settle(Record::Hold, 1).await;
    let failures = store.failures(Some(handler)).await.unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (failures[0].status, failures[0].attempts),
        (FailureStatus::Retrying, 1)
    );
    let discarded = store
        .reset_checkpoint(
            &claim,
            Rewind {
                after: 0,
                failures: OnReset::DiscardFailures,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (discarded.retrying, discarded.dead, discarded.held),
        (1, 0, 0)
    );
    assert!(store.failures(Some(handler)).await.unwrap().is_empty());
    store.release(&claim).await.unwrap();
}
