//! The worker as a long-running process: wake-ups, its run time, refused handlers, the circuit
//! breaker, and leases between two workers.

use super::*;

// --- the worker as a long-running process ----------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "forms.form_submitted")]
pub(crate) struct FormSubmitted {
    pub(crate) form: u32,
}

static SUBMITTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.store_submission")]
fn store_submission(e: &FormSubmitted) {
    SUBMITTED.lock().unwrap().push(e.form);
}

#[tokio::test]
async fn a_running_worker_wakes_on_append_without_waiting_for_its_poll() {
    for store in stores().await {
        a_running_worker_wakes_on_append_without_waiting_for_its_poll_on(store).await;
    }
}

async fn a_running_worker_wakes_on_append_without_waiting_for_its_poll_on(
    store: Arc<dyn DurableStore>,
) {
    let bus = bus();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(&bus, &store)
        .handlers(["test.store_submission"])
        .poll_interval(Duration::from_secs(3600))
        .run_until(async move {
            let _ = stopped.await;
        });
    let worker = tokio::spawn(worker);
    tokio::time::sleep(Duration::from_millis(50)).await; // the worker is idle, waiting
    append(&store, &FormSubmitted { form: 11 }).await;
    let delivered = async {
        while !SUBMITTED.lock().unwrap().contains(&11) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), delivered)
        .await
        .expect("woken by the append, not by the hour-long poll");

    // While it runs, it holds the handler's lease, with this process's pid.
    let status = store
        .status("test.store_submission", "forms.form_submitted")
        .await
        .unwrap();
    // One lease per segment of the handler's stream (SQLite: one).
    assert_eq!(status.leases.len(), store.segments() as usize, "{status:?}");
    assert_eq!(status.leases[0].owner.pid, std::process::id());
    append(&store, &FormSubmitted { form: 12 }).await;
    stop.send(()).unwrap();
    let summary = worker.await.unwrap().unwrap();
    assert!(summary.handlers["test.store_submission"].delivered >= 1);
    assert_eq!(
        store
            .status("test.store_submission", "forms.form_submitted")
            .await
            .unwrap()
            .leases,
        [],
        "released on stop"
    );
    SUBMITTED.lock().unwrap().clear();
}

#[tokio::test]
async fn max_runtime_stops_the_worker_cleanly() {
    let (bus, store) = (bus(), stores().await.remove(0));
    let summary = Worker::new(&bus, &store)
        .handlers(["test.store_submission"])
        .max_runtime(Duration::from_millis(100))
        .run_until(std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary.handlers["test.store_submission"].delivered, 0);
}

#[tokio::test]
async fn unknown_or_inline_handlers_are_refused_all_at_once() {
    let (bus, store) = (bus(), stores().await.remove(0));
    let err = Worker::new(&bus, &store)
        .handlers(["test.nope", "durable::worker::inline_only"])
        .drain()
        .await
        .unwrap_err();
    let WorkerError::Invalid(problems) = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 2, "{err}");
    assert!(
        err.to_string()
            .contains("no handler is named `test.nope`; durable handlers: "),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("handler `durable::worker::inline_only` is sync, not durable"),
        "{err}"
    );
}

#[event_handler]
fn inline_only(_: &FormSubmitted) {}

#[tokio::test]
async fn worker_errors_print_their_message_in_debug_too() {
    let (bus, store) = (bus(), stores().await.remove(0));
    let err = Worker::new(&bus, &store)
        .handlers(["test.nope"])
        .drain()
        .await
        .unwrap_err();
    // What `fn main() -> Result<(), WorkerError>` and `.expect(..)` print.
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(
        format!("{err:?}").starts_with("the worker cannot start: no handler is named `test.nope`"),
        "{err:?}"
    );
}

// --- circuit breaker -------------------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "webhooks.ping", aggregate = "Hook")]
struct Ping {
    #[event(aggregate_id)]
    hook: u32,
}

static PINGS: Mutex<u32> = Mutex::new(0);

#[event_handler(durable, name = "test.ping", max_attempts = 10, backoff_ms = 60000)]
fn ping(_: &Ping) -> Result<(), &'static str> {
    *PINGS.lock().unwrap() += 1;
    Err("connection refused")
}

#[tokio::test]
async fn the_circuit_opens_after_failures_in_a_row() {
    for store in stores().await {
        *PINGS.lock().unwrap() = 0;
        the_circuit_opens_after_failures_in_a_row_on(store).await;
    }
}

async fn the_circuit_opens_after_failures_in_a_row_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    for hook in 0..10 {
        append(&store, &Ping { hook }).await;
    }
    let summary = Worker::new(&bus, &store)
        .handlers(["test.ping"])
        .circuit_breaker(3, Duration::from_secs(3600))
        .concurrency(1)
        .drain()
        .await
        .unwrap();
    // Three attempts, then the handler pauses: the other seven events wait, untouched. (With
    // several segments each segment's subscription has its own breaker: three per segment.
    // With more events in flight, those already started when the circuit opens finish.)
    let pings = *PINGS.lock().unwrap();
    if store.segments() == 1 {
        assert_eq!(pings, 3);
    } else {
        assert!((1..=3 * store.segments()).contains(&pings), "{pings}");
    }
    assert_eq!(summary.handlers["test.ping"].failed, u64::from(pings));
    let status = store.status("test.ping", "webhooks.ping").await.unwrap();
    assert_eq!(
        (status.retrying, status.lag),
        (u64::from(pings), 10 - u64::from(pings))
    );
}

#[event_handler(
    durable,
    name = "test.ping_unreachable",
    max_attempts = 10,
    backoff_ms = 60000,
    breaker_after = 2,
    breaker_cooldown_ms = 3600000
)]
fn ping_unreachable(_: &Ping) -> Result<(), &'static str> {
    Err("connection refused")
}

#[tokio::test]
async fn an_open_circuit_is_recorded_with_the_handlers_own_settings_until_the_worker_stops() {
    for store in stores().await {
        an_open_circuit_is_recorded_on(store).await;
    }
}

async fn an_open_circuit_is_recorded_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    for hook in 0..20 {
        append(&store, &Ping { hook }).await;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(&bus, &store)
        .handlers(["test.ping_unreachable"])
        .concurrency(1)
        .poll_interval(Duration::from_millis(20));
    let running = tokio::spawn(worker.run_until(async move {
        let _ = stopped.await;
    }));
    let started = std::time::Instant::now();
    let status = loop {
        let status = store
            .status("test.ping_unreachable", "webhooks.ping")
            .await
            .unwrap();
        if !status.circuits.is_empty() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no circuit recorded: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The attribute's settings: open after 2 fresh failures, for an hour.
    for circuit in &status.circuits {
        assert_eq!(circuit.failures, 2, "{status:?}");
        let left = circuit
            .until
            .duration_since(std::time::SystemTime::now())
            .unwrap();
        assert!(left > Duration::from_secs(3500), "{left:?}");
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let status = store
        .status("test.ping_unreachable", "webhooks.ping")
        .await
        .unwrap();
    assert_eq!(
        status.circuits,
        vec![],
        "a stopped worker leaves no circuit"
    );
}

// --- leases ----------------------------------------------------------------------------------

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "mail.newsletter_queued")]
struct NewsletterQueued {
    id: u32,
}

static SENT: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "test.send_newsletter")]
async fn send_newsletter(e: &NewsletterQueued) {
    tokio::time::sleep(Duration::from_millis(25)).await;
    SENT.lock().unwrap().push(e.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_deliver_the_same_handler_at_once_even_through_long_steps() {
    for store in stores().await {
        two_workers_never_deliver_the_same_handler_at_once_on(store).await;
    }
}

async fn two_workers_never_deliver_the_same_handler_at_once_on(store: Arc<dyn DurableStore>) {
    let bus = bus();
    for id in 0..24 {
        append(&store, &NewsletterQueued { id }).await;
    }
    // 24 deliveries of 25 ms take 600 ms, twice the 300 ms lease: the worker holding it must
    // renew it between deliveries, or the other one would take over mid-step. (Renewal starts
    // with half the lease left, so a loaded machine may be 125 ms late without a false alarm.)
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut stopped = stopped.clone();
            let worker = Worker::new(&bus, &store)
                .handlers(["test.send_newsletter"])
                .lease_ttl(Duration::from_millis(300))
                .poll_interval(Duration::from_millis(5));
            tokio::spawn(worker.run_until(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        })
        .collect();
    let all_sent = async {
        while SENT.lock().unwrap().len() < 24 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all_sent)
        .await
        .expect("all sent");
    tokio::time::sleep(Duration::from_millis(350)).await; // a duplicate would show up by now
    stop.send(true).unwrap();
    let mut delivered = 0;
    for worker in workers {
        delivered += worker.await.unwrap().unwrap().handlers["test.send_newsletter"].delivered;
    }
    assert_eq!(delivered, 24);
    assert_eq!(
        std::mem::take(&mut *SENT.lock().unwrap()),
        (0..24).collect::<Vec<_>>(),
        "each once, in order"
    );
}
