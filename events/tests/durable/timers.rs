//! Durable timers on every backend: scheduled in an outbox (rolled back with it), on the bus,
//! or by a durable handler (committed with its checkpoint); fired once by a worker through the
//! normal durable path (retries, dead letters); cancelled and re-scheduled by owner and key.

use crate::backends;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use events::store::StoreError;
use events::worker::{Timers, Worker};
use events::{event_handler, BoxError, Bus, DomainEvent, Meta, PublishError};
use serde::{Deserialize, Serialize};

use backends::backends;

#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(aggregate = "Invoice")]
struct InvoiceOverdue {
    #[event(aggregate_id)]
    invoice: String,
}

/// Every fired `InvoiceOverdue`: (invoice, when it ran, its correlation id).
static OVERDUE: Mutex<Vec<(String, SystemTime, uuid::Uuid)>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "timers.remind")]
fn remind(e: &InvoiceOverdue, meta: Meta) {
    OVERDUE
        .lock()
        .unwrap()
        .push((e.invoice.clone(), SystemTime::now(), meta.correlation_id()));
}

#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(aggregate = "Job")]
struct JobDue {
    #[event(aggregate_id)]
    job: String,
}

/// Attempts of the `JobDue` handler, which always fails.
static JOB_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[event_handler(durable, name = "timers.run_job", max_attempts = 2, backoff_ms = 1)]
fn run_job(_: &JobDue) -> Result<(), String> {
    JOB_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    Err("the job's server is down".into())
}

#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(aggregate = "Order")]
struct OrderPlaced {
    #[event(aggregate_id)]
    order: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(aggregate = "Order")]
struct OrderPaid {
    #[event(aggregate_id)]
    order: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(aggregate = "Order")]
struct PaymentTimedOut {
    #[event(aggregate_id)]
    order: String,
}

/// Schedules the order's payment deadline, committed with the handler's checkpoint.
#[event_handler(durable, name = "timers.await_payment")]
fn await_payment(e: &OrderPlaced, timers: Timers) -> Result<(), BoxError> {
    let deadline = PaymentTimedOut {
        order: e.order.clone(),
    };
    timers.schedule_keyed(
        format!("order/{}", e.order),
        "payment",
        Duration::from_secs(3600),
        &deadline,
    )?;
    Ok(())
}

/// Cancels it when the order is paid.
#[event_handler(durable, name = "timers.paid")]
fn paid(e: &OrderPaid, timers: Timers) -> Result<(), BoxError> {
    timers.cancel(format!("order/{}", e.order), "payment")?;
    Ok(())
}

fn fired(invoice: &str) -> Vec<(String, SystemTime, uuid::Uuid)> {
    OVERDUE
        .lock()
        .unwrap()
        .iter()
        .filter(|(i, ..)| i == invoice)
        .cloned()
        .collect()
}

fn overdue(invoice: &str) -> InvoiceOverdue {
    InvoiceOverdue {
        invoice: invoice.to_owned(),
    }
}

#[tokio::test]
async fn a_timer_scheduled_in_an_outbox_that_rolls_back_is_not_stored() {
    for store in backends("timer_rollback").await {
        let bus = Bus::builder().store(store.clone()).build().unwrap();
        let failed: Result<((), _), BoxError> = store
            .outbox(&bus, |outbox| {
                outbox.schedule(Duration::ZERO, &overdue("rolled-back"))?;
                Err::<(), BoxError>("the caller's own write failed".into())
            })
            .await;
        assert!(failed.is_err());
        assert!(store.timers().await.unwrap().is_empty(), "{store:?}");
        let (id, _) = store
            .outbox(&bus, |outbox| {
                outbox.schedule(Duration::from_secs(60), &overdue("kept"))
            })
            .await
            .unwrap();
        let timers = store.timers().await.unwrap();
        assert_eq!(timers.len(), 1);
        assert_eq!(
            (timers[0].id, timers[0].event.as_str()),
            (id, "InvoiceOverdue")
        );
        assert_eq!(timers[0].aggregate_id, "kept");
    }
}

#[tokio::test]
async fn a_timer_fires_once_at_its_due_time_and_its_handler_runs() {
    for (i, store) in backends("timer_fires").await.into_iter().enumerate() {
        let invoice = format!("fires-{i}");
        let bus = Bus::builder().store(store.clone()).build().unwrap();
        let due_in = Duration::from_millis(300);
        let scheduled = SystemTime::now();
        bus.schedule(due_in, &overdue(&invoice)).await.unwrap();
        let worker = Worker::new(&bus, &store)
            .handlers(["timers.remind"])
            .poll_interval(Duration::from_millis(50));
        let deadline = Instant::now() + Duration::from_secs(10);
        let run = tokio::spawn(worker.run_until(async move {
            while fired(&invoice).is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }));
        let summary = run.await.unwrap().unwrap();
        let runs = fired(&format!("fires-{i}"));
        assert_eq!(runs.len(), 1, "fired once on {store:?}");
        let ran_at = runs[0].1.duration_since(scheduled).unwrap();
        assert!(ran_at >= due_in, "not before its due time: {ran_at:?}");
        assert_eq!(summary.timers.fired, 1);
        assert!(
            store.timers().await.unwrap().is_empty(),
            "the timer is gone"
        );
        let log = store.read_log(0, 10).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].name, "InvoiceOverdue");
    }
}

#[tokio::test]
async fn a_fired_event_whose_handler_fails_is_retried_then_dead_lettered() {
    for store in backends("timer_dead_letter").await {
        let before = JOB_ATTEMPTS.load(Ordering::SeqCst);
        let bus = Bus::builder().store(store.clone()).build().unwrap();
        bus.schedule(
            SystemTime::now() - Duration::from_secs(5),
            &JobDue { job: "j".into() },
        )
        .await
        .unwrap();
        for _ in 0..3 {
            Worker::new(&bus, &store)
                .handlers(["timers.run_job"])
                .drain()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(JOB_ATTEMPTS.load(Ordering::SeqCst) - before, 2, "{store:?}");
        let dead = store.failures(Some("timers.run_job")).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            dead[0].last_error.as_deref(),
            Some("the job's server is down")
        );
        assert_eq!(store.log_head().await.unwrap(), 1, "fired once");
    }
}

#[tokio::test]
async fn a_handler_schedules_a_keyed_timer_with_its_checkpoint_and_another_cancels_it() {
    for store in backends("timer_keyed").await {
        let bus = Bus::builder().store(store.clone()).build().unwrap();
        assert!(bus
            .dispatch(&OrderPlaced {
                order: "o-1".into()
            })
            .await
            .unwrap()
            .is_ok());
        assert!(bus
            .dispatch(&OrderPlaced {
                order: "o-2".into()
            })
            .await
            .unwrap()
            .is_ok());
        let placed = Worker::new(&bus, &store).handlers(["timers.await_payment"]);
        placed.drain().await.unwrap();
        let timers = store.timers().await.unwrap();
        assert_eq!(timers.len(), 2, "{store:?}");
        let cause = store.read_log(0, 1).await.unwrap().remove(0);
        // The two orders are of different aggregates: their deliveries may run in either
        // order, so the timers are found by owner.
        let first = timers
            .iter()
            .find(|t| t.owner.as_deref() == Some("order/o-1"))
            .unwrap_or_else(|| panic!("{timers:?}"));
        assert_eq!(first.key.as_deref(), Some("payment"));
        assert_eq!(
            first.causation_id,
            Some(cause.event_id),
            "caused by the handled event"
        );
        // Placing o-1 again re-schedules its one timer (same owner and key).
        assert!(bus
            .dispatch(&OrderPlaced {
                order: "o-1".into()
            })
            .await
            .unwrap()
            .is_ok());
        Worker::new(&bus, &store)
            .handlers(["timers.await_payment"])
            .drain()
            .await
            .unwrap();
        let again = store.timers().await.unwrap();
        assert_eq!(again.len(), 2, "re-scheduled, not doubled");
        assert_ne!(
            again
                .iter()
                .find(|t| t.owner.as_deref() == Some("order/o-1"))
                .unwrap()
                .id,
            first.id
        );
        assert!(bus
            .dispatch(&OrderPaid {
                order: "o-1".into()
            })
            .await
            .unwrap()
            .is_ok());
        Worker::new(&bus, &store)
            .handlers(["timers.paid"])
            .drain()
            .await
            .unwrap();
        let left = store.timers().await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].owner.as_deref(), Some("order/o-2"));
    }
}

#[tokio::test]
async fn scheduling_needs_a_store_and_timers_outside_a_delivery_say_so() {
    let bus = Bus::builder().build().unwrap();
    let err = bus
        .schedule(Duration::ZERO, &overdue("x"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no store to keep timers in"),
        "{err}"
    );
    let _: Option<PublishError> = None;
    let _: Option<StoreError> = None;
}

#[tokio::test]
async fn the_cli_level_calls_cancel_and_reschedule_by_id() {
    for store in backends("timer_admin").await {
        let bus = Bus::builder().store(store.clone()).build().unwrap();
        let a = bus
            .schedule(Duration::from_secs(60), &overdue("a"))
            .await
            .unwrap();
        let b = bus
            .schedule(Duration::from_secs(120), &overdue("b"))
            .await
            .unwrap();
        let counts = store.timer_counts(SystemTime::now()).await.unwrap();
        assert_eq!((counts.scheduled, counts.overdue), (2, 0));
        let cancelled = store
            .write_timers(&[events::TimerWrite::Cancel(events::TimerTarget::Id(a))])
            .await
            .unwrap();
        assert_eq!(cancelled, 1);
        let past = SystemTime::now() - Duration::from_secs(30);
        assert!(store.reschedule_timer(b, past).await.unwrap());
        assert!(!store.reschedule_timer(a, past).await.unwrap(), "a is gone");
        let counts = store.timer_counts(SystemTime::now()).await.unwrap();
        assert_eq!((counts.scheduled, counts.overdue), (1, 1));
        assert!(counts.oldest_due.is_some());
    }
}
