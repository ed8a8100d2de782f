#![cfg(feature = "sqlite")]
//! A store that cannot write (issue 22): a worker whose settle fails backs off and records the
//! same outcome again, without running the handler again meanwhile, on every backend.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use events::store::durable::{
    AppendAt, AppendOnce, Checkpoint, Claim, ClaimRequest, Claimed, Discarded, DurableStore,
    HandlerStatus, Heartbeat, LogQuery, Member, OpenCircuit, Owner, PendingFailure, Rewind,
    Settlement, Unread,
};
use events::store::{
    EventMetadata, NewEvent, StoreError, StoredEvent, StoredSnapshot, StreamId, StreamVersion,
    ViewWrite,
};
use events::store::{FiredTimer, Timer, TimerCounts};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use events::{BoxError, DurableRecord, DurableSink, TimerId, TimerWrite};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::backends;
use backends::backends;

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "faults.mail_requested", aggregate = "Customer")]
struct MailRequested {
    #[event(aggregate_id)]
    customer: u32,
}

/// How many times the mail handler ran: each run is a mail sent.
static SENT: AtomicU32 = AtomicU32::new(0);

#[event_handler(durable, name = "faults.send_mail")]
async fn send_mail(_: &MailRequested) -> Result<(), String> {
    SENT.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// A store whose first `failing` settles fail as a full disk does; it notes when each settle
/// was tried.
#[derive(Debug)]
struct FullDisk {
    inner: Arc<dyn DurableStore>,
    failing: AtomicU32,
    tried: Mutex<Vec<(Instant, bool)>>,
}

impl FullDisk {
    fn settled(&self) -> bool {
        self.tried.lock().unwrap().iter().any(|(_, ok)| *ok)
    }
}

#[async_trait]
impl DurableSink for FullDisk {
    async fn commit(
        &self,
        records: Vec<DurableRecord>,
        views: Vec<ViewWrite>,
        timers: Vec<TimerWrite>,
    ) -> Result<Vec<u64>, BoxError> {
        self.inner.commit(records, views, timers).await
    }
}

#[async_trait]
impl DurableStore for FullDisk {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    async fn load_stream(
        &self,
        stream: StreamId<'_>,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.load_stream(stream, after).await
    }
    async fn read_snapshot(
        &self,
        stream: StreamId<'_>,
    ) -> Result<Option<StoredSnapshot>, StoreError> {
        self.inner.read_snapshot(stream).await
    }
    async fn write_snapshot(
        &self,
        stream: StreamId<'_>,
        snapshot: StoredSnapshot,
    ) -> Result<(), StoreError> {
        self.inner.write_snapshot(stream, snapshot).await
    }
    async fn save_view(
        &self,
        view: &str,
        id: &str,
        body: &serde_json::Value,
        version: u64,
    ) -> Result<(), StoreError> {
        self.inner.save_view(view, id, body, version).await
    }
    async fn write_view(&self, write: &ViewWrite) -> Result<bool, StoreError> {
        self.inner.write_view(write).await
    }
    async fn clear_views(&self, view: &str) -> Result<u64, StoreError> {
        self.inner.clear_views(view).await
    }
    async fn list_views(
        &self,
        view: &str,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.inner.list_views(view, limit).await
    }
    async fn delete_view(&self, view: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_view(view, id).await
    }
    async fn caused_by(&self, causation: uuid::Uuid) -> Result<bool, StoreError> {
        self.inner.caused_by(causation).await
    }
    fn segments(&self) -> u32 {
        self.inner.segments()
    }
    async fn append_to(
        &self,
        to: AppendAt<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.append_to(to, events).await
    }
    async fn append_once(
        &self,
        at: StreamVersion<'_>,
        event: NewEvent,
    ) -> Result<AppendOnce, StoreError> {
        self.inner.append_once(at, event).await
    }
    async fn read_log(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_log(after, limit).await
    }
    async fn log_head(&self) -> Result<u64, StoreError> {
        self.inner.log_head().await
    }
    async fn query_log(&self, query: &LogQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.query_log(query).await
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn wakeups(&self) -> watch::Receiver<u64> {
        self.inner.wakeups()
    }
    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Claimed, StoreError> {
        self.inner.claim(request).await
    }
    async fn release(&self, claim: &Claim) -> Result<(), StoreError> {
        self.inner.release(claim).await
    }
    async fn record_circuit(
        &self,
        claim: &Claim,
        open: Option<&OpenCircuit>,
    ) -> Result<(), StoreError> {
        self.inner.record_circuit(claim, open).await
    }
    async fn heartbeat(&self, beat: Heartbeat<'_>) -> Result<Vec<Member>, StoreError> {
        self.inner.heartbeat(beat).await
    }
    async fn leave(&self, handler: &str, owner: &Owner) -> Result<(), StoreError> {
        self.inner.leave(handler, owner).await
    }
    async fn new_events(&self, unread: Unread<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.new_events(unread).await
    }
    async fn blocked_aggregates(&self, claim: &Claim) -> Result<HashSet<String>, StoreError> {
        self.inner.blocked_aggregates(claim).await
    }
    async fn due_pending(
        &self,
        claim: &Claim,
        limit: usize,
    ) -> Result<Vec<(PendingFailure, StoredEvent)>, StoreError> {
        self.inner.due_pending(claim, limit).await
    }
    async fn next_retry(&self, claim: &Claim) -> Result<Option<SystemTime>, StoreError> {
        self.inner.next_retry(claim).await
    }
    async fn settle(&self, claim: &Claim, settlement: Settlement<'_>) -> Result<(), StoreError> {
        let fail = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        self.tried.lock().unwrap().push((Instant::now(), !fail));
        if fail {
            return Err(StoreError::Backend(
                "database or disk is full (test double)".into(),
            ));
        }
        self.inner.settle(claim, settlement).await
    }
    async fn load_view(
        &self,
        view: &str,
        id: &str,
    ) -> Result<Option<(serde_json::Value, u64)>, StoreError> {
        self.inner.load_view(view, id).await
    }
    async fn fire_timers(
        &self,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<FiredTimer>, StoreError> {
        self.inner.fire_timers(now, limit).await
    }
    async fn list_timers(&self, limit: Option<usize>) -> Result<Vec<Timer>, StoreError> {
        self.inner.list_timers(limit).await
    }
    async fn timer_counts(&self, now: SystemTime) -> Result<TimerCounts, StoreError> {
        self.inner.timer_counts(now).await
    }
    async fn write_timers(&self, writes: &[TimerWrite]) -> Result<u64, StoreError> {
        self.inner.write_timers(writes).await
    }
    async fn reschedule_timer(&self, id: TimerId, due_at: SystemTime) -> Result<bool, StoreError> {
        self.inner.reschedule_timer(id, due_at).await
    }
    async fn reset_checkpoint(
        &self,
        claim: &Claim,
        rewind: Rewind,
    ) -> Result<Discarded, StoreError> {
        self.inner.reset_checkpoint(claim, rewind).await
    }
    async fn failures(&self, handler: Option<&str>) -> Result<Vec<PendingFailure>, StoreError> {
        self.inner.failures(handler).await
    }
    async fn retry_dead_letters(
        &self,
        id: Option<i64>,
        handler: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.inner.retry_dead_letters(id, handler).await
    }
    async fn drop_dead_letter(&self, id: i64) -> Result<bool, StoreError> {
        self.inner.drop_dead_letter(id).await
    }
    async fn status(&self, handler: &str, event: &str) -> Result<HandlerStatus, StoreError> {
        self.inner.status(handler, event).await
    }
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.checkpoints().await
    }
    async fn rename_checkpoint(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.inner.rename_checkpoint(from, to).await
    }
}

#[tokio::test]
async fn a_settle_that_fails_backs_off_and_does_not_run_the_handler_again() {
    for inner in backends("worker_faults").await {
        SENT.store(0, Ordering::SeqCst);
        let location = inner.location();
        let store = Arc::new(FullDisk {
            inner,
            failing: AtomicU32::new(3),
            tried: Mutex::new(Vec::new()),
        });
        let dyn_store: Arc<dyn DurableStore> = store.clone();
        dyn_store
            .append_event(&MailRequested { customer: 7 }, EventMetadata::default())
            .await
            .unwrap();
        let bus = Bus::builder().build().unwrap();
        let watched = Arc::clone(&store);
        let summary = Worker::new(&bus, &dyn_store)
            .handlers(["faults.send_mail"])
            .poll_interval(Duration::from_millis(20))
            .run_until(async move {
                let started = Instant::now();
                while !watched.settled() && started.elapsed() < Duration::from_secs(20) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .unwrap();
        let tried = store.tried.lock().unwrap().clone();
        assert_eq!(
            tried.iter().map(|(_, ok)| *ok).collect::<Vec<_>>(),
            [false, false, false, true],
            "{location}"
        );
        assert_eq!(
            SENT.load(Ordering::SeqCst),
            1,
            "{location}: the mail was sent once, though its outcome took four tries to record"
        );
        // Back-off between the tries: 100 ms, 200 ms, 400 ms at least.
        let waited = tried[3].0 - tried[0].0;
        assert!(
            waited >= Duration::from_millis(700),
            "{location}: {waited:?}"
        );
        assert_eq!(
            summary.handlers["faults.send_mail"].delivered, 1,
            "{location}"
        );
        assert_eq!(
            dyn_store
                .status("faults.send_mail", "faults.mail_requested")
                .await
                .unwrap()
                .lag,
            0
        );
    }
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "faults.page_viewed", aggregate = "Page")]
struct PageViewed {
    #[event(aggregate_id)]
    page: u32,
}

#[event_handler(durable, name = "faults.count_view")]
async fn count_view(_: &PageViewed) {}

/// Appends a `PageViewed` of `page(i)` for each of `events`, drains `faults.count_view` at
/// concurrency 16 (every event delivered), and returns how many settles that took.
async fn settles_to_deliver(
    inner: Arc<dyn DurableStore>,
    events: u32,
    page: fn(u32) -> u32,
) -> u32 {
    let location = inner.location();
    let store = Arc::new(FullDisk {
        inner,
        failing: AtomicU32::new(0),
        tried: Mutex::new(Vec::new()),
    });
    let dyn_store: Arc<dyn DurableStore> = store.clone();
    for i in 0..events {
        dyn_store
            .append_event(&PageViewed { page: page(i) }, EventMetadata::default())
            .await
            .unwrap();
    }
    let bus = Bus::builder().build().unwrap();
    let summary = Worker::new(&bus, &dyn_store)
        .handlers(["faults.count_view"])
        .concurrency(16)
        .drain()
        .await
        .unwrap();
    assert_eq!(
        summary.handlers["faults.count_view"].delivered,
        u64::from(events),
        "{location}"
    );
    let settles = store.tried.lock().unwrap().len() as u32;
    settles
}

/// A run of deliveries that all succeed is recorded in one transaction (one settle), not one
/// per event: the worker records what is contiguous once nothing more may start without it.
#[tokio::test]
async fn a_run_of_successes_is_recorded_in_one_settle_not_one_per_event() {
    const EVENTS: u32 = 320;
    for inner in backends("worker_faults_runs").await {
        let (location, segments) = (inner.location(), inner.segments());
        let settles = settles_to_deliver(inner, EVENTS, |i| i).await;
        // At most one settle per 16 events started (the window), plus a last one per read.
        let most = EVENTS / 16 * 2 + 4 * segments;
        assert!(
            settles <= most,
            "{location}: {settles} settles for {EVENTS} events (at most {most})"
        );
    }
}

/// One aggregate's events go one at a time, yet their successes are still recorded in runs.
#[tokio::test]
async fn one_aggregates_successes_are_recorded_in_runs_too() {
    const EVENTS: u32 = 160;
    for inner in backends("worker_faults_one_stream").await {
        let location = inner.location();
        let settles = settles_to_deliver(inner, EVENTS, |_| 1).await;
        let most = EVENTS / 16 + 4;
        assert!(
            settles <= most,
            "{location}: {settles} settles for {EVENTS} events (at most {most})"
        );
    }
}
