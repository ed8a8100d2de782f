//! Delivery, catch-up and replay; retries, dead letters and hold-back; batch handlers.

use super::*;

// --- delivery, catch-up, replay ---------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "cards.card_added", aggregate = "Library")]
pub(crate) struct CardAdded {
    #[event(aggregate_id)]
    pub(crate) library: u32,
    pub(crate) card: String,
}

static INDEXED: Mutex<Vec<(String, Meta)>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.index_card")]
fn index_card(e: &CardAdded, meta: Meta) {
    INDEXED.lock().unwrap().push((e.card.clone(), meta));
}

#[tokio::test]
async fn a_new_handler_catches_up_and_a_reset_replays() {
    for store in stores().await {
        a_new_handler_catches_up_and_a_reset_replays_on(store).await;
    }
}

async fn a_new_handler_catches_up_and_a_reset_replays_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    let mut ids = Vec::new();
    for card in ["lotus", "mox", "recall"] {
        let e = CardAdded {
            library: 1,
            card: card.into(),
        };
        ids.push(append(&store, &e).await.event_id);
    }
    // A sync publish never reaches a durable handler inline: it cannot store, so it refuses.
    let refused = bus.publish(&CardAdded {
        library: 1,
        card: "inline".into(),
    });
    assert!(refused.is_err());

    let summary = drain(&bus, &store, "test.index_card").await;
    assert_eq!(summary.handlers["test.index_card"].delivered, 3);
    let seen: Vec<_> = INDEXED.lock().unwrap().drain(..).collect();
    assert_eq!(
        seen.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["lotus", "mox", "recall"]
    );
    assert_eq!(
        seen.iter().map(|(_, m)| m.event_id()).collect::<Vec<_>>(),
        ids,
        "handlers see the stored ids"
    );

    let status = store
        .status("test.index_card", "cards.card_added")
        .await
        .unwrap();
    assert_eq!((status.checkpoint, status.lag), (3, 0));

    // Nothing is delivered twice...
    let again = drain(&bus, &store, "test.index_card").await;
    assert_eq!(again.handlers["test.index_card"].delivered, 0);
    // ...until the checkpoint is reset: replay from position 2.
    reset(&store, "test.index_card", 1, OnReset::KeepFailures)
        .await
        .unwrap();
    drain(&bus, &store, "test.index_card").await;
    let replayed: Vec<_> = INDEXED.lock().unwrap().drain(..).map(|(c, _)| c).collect();
    assert_eq!(replayed, ["mox", "recall"]);
}

// --- retries, dead letters, hold-back --------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "records.record_updated", aggregate = "Record")]
struct RecordUpdated {
    #[event(aggregate_id)]
    record: u32,
    step: u32,
}

static BROKEN: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());
static SYNCED: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.sync_record", max_attempts = 3, backoff_ms = 1)]
fn sync_record(e: &RecordUpdated) -> Result<(), String> {
    if BROKEN.lock().unwrap().contains(&(e.record, e.step)) {
        return Err(format!(
            "remote rejected record {} step {}",
            e.record, e.step
        ));
    }
    SYNCED.lock().unwrap().push((e.record, e.step));
    Ok(())
}

async fn drain_sync(bus: &Bus, store: &Arc<dyn DurableStore>) {
    // Retries are due a few milliseconds later: drain until nothing is left to retry.
    for _ in 0..50 {
        drain(bus, store, "test.sync_record").await;
        let retrying = store
            .failures(Some("test.sync_record"))
            .await
            .unwrap()
            .iter()
            .any(|f| f.status == FailureStatus::Retrying);
        if !retrying {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("retries never settled");
}

/// The tests on `test.sync_record` share its statics: one at a time.
static SYNC_RECORD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_dead_letter_holds_back_only_its_own_aggregate_until_retried() {
    let _one_at_a_time = SYNC_RECORD.lock().await;
    for store in stores().await {
        a_dead_letter_holds_back_only_its_own_aggregate_until_retried_on(store).await;
    }
}

async fn a_dead_letter_holds_back_only_its_own_aggregate_until_retried_on(
    store: Arc<dyn DurableStore>,
) {
    let bus = bus();
    BROKEN.lock().unwrap().push((1, 2));
    for (record, step) in [(1, 1), (2, 1), (1, 2), (2, 2), (1, 3), (2, 3)] {
        append(&store, &RecordUpdated { record, step }).await;
    }
    drain_sync(&bus, &store).await;

    // Record 2 went through; record 1 stopped at its failing step 2, and step 3 waits behind it.
    let synced: Vec<_> = SYNCED.lock().unwrap().drain(..).collect();
    assert_eq!(synced, [(1, 1), (2, 1), (2, 2), (2, 3)]);
    let failures = store.failures(Some("test.sync_record")).await.unwrap();
    assert_eq!(failures.len(), 2, "{failures:?}");
    let dead = &failures[0];
    assert_eq!(
        (dead.status, dead.attempts, dead.position),
        (FailureStatus::Dead, 3, 3)
    );
    assert_eq!(dead.aggregate, "Record/1");
    assert_eq!(
        dead.last_error.as_deref(),
        Some("remote rejected record 1 step 2")
    );
    assert_eq!(
        (failures[1].status, failures[1].position),
        (FailureStatus::Held, 5)
    );
    let status = store
        .status("test.sync_record", "records.record_updated")
        .await
        .unwrap();
    assert_eq!(
        (status.checkpoint, status.lag, status.dead, status.held),
        (6, 0, 1, 1)
    );

    // The remote is fixed; the operator retries: step 2, then the held step 3, in order.
    BROKEN.lock().unwrap().clear();
    assert_eq!(
        store.retry_dead_letters(Some(dead.id), None).await.unwrap(),
        1
    );
    drain_sync(&bus, &store).await;
    assert_eq!(
        SYNCED.lock().unwrap().drain(..).collect::<Vec<_>>(),
        [(1, 2), (1, 3)]
    );
    assert!(store
        .failures(Some("test.sync_record"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn dropping_a_dead_letter_releases_the_events_behind_it() {
    let _one_at_a_time = SYNC_RECORD.lock().await;
    for store in stores().await {
        dropping_a_dead_letter_releases_the_events_behind_it_on(store).await;
    }
}

async fn dropping_a_dead_letter_releases_the_events_behind_it_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    BROKEN.lock().unwrap().push((7, 1));
    for step in 1..=3 {
        append(&store, &RecordUpdated { record: 7, step }).await;
    }
    drain_sync(&bus, &store).await;
    let dead = dead_letters(&store, "test.sync_record").await;
    assert_eq!(dead.len(), 1);
    assert!(store.drop_dead_letter(dead[0].id).await.unwrap());
    drain_sync(&bus, &store).await;
    let synced: Vec<_> = SYNCED
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|(r, _)| *r == 7)
        .collect();
    assert_eq!(synced, [(7, 2), (7, 3)]);
    SYNCED.lock().unwrap().retain(|(r, _)| *r != 7);
    BROKEN.lock().unwrap().clear();
}

// --- batch handlers --------------------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "search.document_changed", aggregate = "Document")]
struct DocumentChanged {
    #[event(aggregate_id)]
    doc: u32,
    rev: u32,
}

static BATCHES: Mutex<Vec<Vec<(u32, u32)>>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.reindex", max_attempts = 1)]
fn reindex(docs: &[DocumentChanged]) -> Result<(), String> {
    if let Some(bad) = docs.iter().find(|d| d.rev == 0) {
        return Err(format!("document {} has no revision", bad.doc));
    }
    BATCHES
        .lock()
        .unwrap()
        .push(docs.iter().map(|d| (d.doc, d.rev)).collect());
    Ok(())
}

/// The batches `test.reindex` received are `expected` on one segment. With several, documents
/// may sit in different segments, which take their own runs (a bad event splits only its own
/// segment's run): each document's revisions still arrive in order, each exactly once.
fn assert_runs<const N: usize>(store: &Arc<dyn DurableStore>, expected: [Vec<(u32, u32)>; N]) {
    let batches = BATCHES.lock().unwrap().drain(..).collect::<Vec<_>>();
    if store.segments() == 1 {
        return assert_eq!(batches, expected);
    }
    let per_doc = |batches: &[Vec<(u32, u32)>]| {
        let mut docs = std::collections::BTreeMap::<u32, Vec<u32>>::new();
        for (doc, rev) in batches.iter().flatten() {
            docs.entry(*doc).or_default().push(*rev);
        }
        docs
    };
    assert_eq!(per_doc(&batches), per_doc(&expected), "{batches:?}");
}

#[tokio::test]
async fn batch_handlers_take_runs_and_isolate_a_bad_event() {
    for store in stores().await {
        batch_handlers_take_runs_and_isolate_a_bad_event_on(store).await;
    }
}

async fn batch_handlers_take_runs_and_isolate_a_bad_event_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    assert!(events::catalog()
        .handler("test.reindex")
        .unwrap()
        .is_batch());
    for (doc, rev) in [(1, 1), (2, 1), (1, 2)] {
        append(&store, &DocumentChanged { doc, rev }).await;
    }
    drain(&bus, &store, "test.reindex").await;
    assert_runs(&store, [vec![(1, 1), (2, 1), (1, 2)]]);

    // A bad event fails its batch; the batch is redelivered event by event: the bad one is
    // dead-lettered, the later event of its document is held, the others go through.
    for (doc, rev) in [(3, 1), (1, 0), (3, 2), (1, 3)] {
        append(&store, &DocumentChanged { doc, rev }).await;
    }
    let summary = drain(&bus, &store, "test.reindex").await;
    let s = summary.handlers["test.reindex"];
    assert_eq!(
        (s.delivered, s.dead_lettered, s.held),
        (2, 1, 1),
        "{summary}"
    );
    assert_runs(&store, [vec![(3, 1)], vec![(3, 2)]]);
    let dead = dead_letters(&store, "test.reindex").await;
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("document 1 has no revision")
    );

    // Next run: the held event is delivered alone once the dead letter is dropped; new events
    // after it come as one batch again.
    store.drop_dead_letter(dead[0].id).await.unwrap();
    append(&store, &DocumentChanged { doc: 4, rev: 1 }).await;
    append(&store, &DocumentChanged { doc: 5, rev: 1 }).await;
    drain(&bus, &store, "test.reindex").await;
    assert_runs(&store, [vec![(1, 3)], vec![(4, 1), (5, 1)]]);
    assert_eq!(
        store
            .status("test.reindex", "search.document_changed")
            .await
            .unwrap()
            .lag,
        0
    );
}
