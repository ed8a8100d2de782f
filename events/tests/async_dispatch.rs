//! `dispatch(..).await` with async handlers that wait, fail, panic (before or after waiting),
//! publish follow-ups, or are dropped while waiting: on the plain walk (the default bus) and on
//! the full path (a bus that times its handlers), which must agree.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use events::{event_handler, Bus, DomainEvent, FailureCause, Publisher, Res};

#[path = "support/journal.rs"]
mod journal;

use journal::Journal;

/// Returns `Pending` once (waking the task), then `Ready`: a handler that really waits.
async fn wait_once() {
    let mut waited = false;
    std::future::poll_fn(|task| {
        if waited {
            Poll::Ready(())
        } else {
            waited = true;
            task.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// The plain walk (default) and the full path (timed handlers).
fn buses() -> [(&'static str, Bus, Arc<Journal>); 2] {
    let build = |timed: bool| {
        let journal = Arc::new(Journal::default());
        let bus = Bus::builder()
            .shared_resource(Arc::clone(&journal))
            .record_durations(timed)
            .build()
            .expect("bus builds");
        (bus, journal)
    };
    let (plain, plain_journal) = build(false);
    let (timed, timed_journal) = build(true);
    [
        ("plain", plain, plain_journal),
        ("timed", timed, timed_journal),
    ]
}

/// Polls `future` to the end without a runtime, counting the polls that returned `Pending`.
fn block_on<F: Future>(future: F) -> (F::Output, usize) {
    let mut future = pin!(future);
    let mut task = Context::from_waker(Waker::noop());
    let mut pending = 0;
    loop {
        match future.as_mut().poll(&mut task) {
            Poll::Ready(output) => return (output, pending),
            Poll::Pending => pending += 1,
        }
    }
}

// --- waits, failures and panics, in order ---------------------------------------------------

#[derive(DomainEvent)]
struct Order {
    id: u32,
}

#[event_handler(name = "order.1_waits", order = 1)]
async fn waits(e: &Order, journal: Res<Journal>) {
    journal.push(format!("waits {} start", e.id));
    wait_once().await;
    journal.push(format!("waits {} end", e.id));
}

#[event_handler(name = "order.2_panics_at_once", order = 2)]
async fn panics_at_once(e: &Order, journal: Res<Journal>) {
    journal.push("panics at once");
    if e.id > 0 {
        panic!("order {} at once", e.id);
    }
}

#[event_handler(name = "order.3_sync", order = 3)]
fn sync_between(_: &Order, journal: Res<Journal>) {
    journal.push("sync");
}

#[event_handler(name = "order.4_panics_after_waiting", order = 4)]
async fn panics_after_waiting(e: &Order, journal: Res<Journal>) {
    journal.push("panics after waiting: start");
    wait_once().await;
    if e.id > 0 {
        panic!("order {} after waiting", e.id);
    }
}

#[event_handler(name = "order.5_fails_after_waiting", order = 5)]
async fn fails_after_waiting(e: &Order, journal: Res<Journal>) -> Result<(), std::io::Error> {
    wait_once().await;
    journal.push("fails");
    Err(std::io::Error::other(format!("order {} refused", e.id)))
}

#[event_handler(name = "order.6_last", order = 6)]
async fn last(e: &Order, journal: Res<Journal>) {
    journal.push(format!("last {}", e.id));
}

#[test]
fn handlers_that_wait_fail_or_panic_are_each_reported_and_the_walk_goes_on() {
    for (config, bus, journal) in buses() {
        let (report, pending) = block_on(bus.dispatch(&Order { id: 7 }));
        let report = report.unwrap();
        assert_eq!(
            journal.take(),
            [
                "waits 7 start",
                "waits 7 end",
                "panics at once",
                "sync",
                "panics after waiting: start",
                "fails",
                "last 7",
            ],
            "{config}"
        );
        assert_eq!(pending, 3, "{config}: three handlers wait once each");
        assert_eq!(report.ran(), 6, "{config}: {report}");
        let failures: Vec<_> = report.failures().iter().map(|f| f.to_string()).collect();
        assert_eq!(
            failures,
            [
                "handler `order.2_panics_at_once` failed: panicked: order 7 at once",
                "handler `order.4_panics_after_waiting` failed: panicked: order 7 after waiting",
                "handler `order.5_fails_after_waiting` failed: order 7 refused",
            ],
            "{config}"
        );
        assert!(matches!(
            report.failures()[1].cause(),
            FailureCause::Panic(_)
        ));

        let (report, _) = block_on(bus.dispatch(&Order { id: 0 }));
        let report = report.unwrap();
        assert_eq!(report.failures().len(), 1, "{config}: {report}");
        journal.take();
    }
}

// --- follow-ups run right after the handler that published them ------------------------------

#[derive(DomainEvent)]
struct Signup {
    user: u32,
}

#[derive(DomainEvent)]
struct Welcome {
    user: u32,
}

#[event_handler(name = "signup.1_publishes", order = 1)]
async fn publishes(e: &Signup, publisher: Publisher, journal: Res<Journal>) {
    wait_once().await;
    publisher.publish(Welcome { user: e.user });
    journal.push("signup published");
}

#[event_handler(name = "signup.2_publishes_then_panics", order = 2)]
async fn publishes_then_panics(e: &Signup, publisher: Publisher, journal: Res<Journal>) {
    publisher.publish(Welcome { user: e.user + 100 });
    journal.push("signup published, panicking");
    panic!("after publishing");
}

#[event_handler(name = "signup.3_after", order = 3)]
async fn after(_: &Signup, journal: Res<Journal>) {
    journal.push("signup after");
}

#[event_handler(name = "welcome.mail")]
async fn mail(e: &Welcome, journal: Res<Journal>) {
    wait_once().await;
    journal.push(format!("welcome {}", e.user));
}

#[test]
fn follow_ups_run_right_after_their_handler_even_one_that_panicked() {
    for (config, bus, journal) in buses() {
        let (report, _) = block_on(bus.dispatch(&Signup { user: 1 }));
        let report = report.unwrap();
        assert_eq!(
            journal.take(),
            [
                "signup published",
                "welcome 1",
                "signup published, panicking",
                "welcome 101",
                "signup after",
            ],
            "{config}"
        );
        assert_eq!(report.ran(), 3, "{config}: {report}");
        assert_eq!(report.failures().len(), 1, "{config}: {report}");
        let follow_ups: Vec<_> = report.follow_ups().iter().map(|r| r.to_string()).collect();
        assert_eq!(
            follow_ups,
            [
                "`Welcome`: 1 handler ran, 0 failed",
                "`Welcome`: 1 handler ran, 0 failed"
            ],
            "{config}"
        );
    }
}

// --- a dispatch dropped while a handler waits drops the handler's future ---------------------

#[derive(DomainEvent)]
struct Abandoned {
    large: bool,
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Counts its drop: proves the handler's future (which holds it) was dropped.
struct DropGuard;

impl Drop for DropGuard {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

#[event_handler(name = "abandoned.waits_forever")]
async fn waits_forever(e: &Abandoned) {
    let _guard = DropGuard;
    // Large enough not to run in place (boxed), when asked.
    let buffer = [u64::from(e.large); 64];
    std::future::pending::<()>().await;
    std::hint::black_box(buffer);
}

#[test]
fn a_dispatch_dropped_while_its_handler_waits_drops_the_handler_future() {
    for (config, bus, _) in buses() {
        for large in [false, true] {
            let before = DROPPED.load(Ordering::SeqCst);
            let event = Abandoned { large };
            {
                let mut dispatch = pin!(bus.dispatch(&event));
                let mut task = Context::from_waker(Waker::noop());
                assert!(dispatch.as_mut().poll(&mut task).is_pending());
                assert!(dispatch.as_mut().poll(&mut task).is_pending());
                assert_eq!(DROPPED.load(Ordering::SeqCst), before, "{config}");
            }
            assert_eq!(
                DROPPED.load(Ordering::SeqCst),
                before + 1,
                "{config}, large: {large}"
            );
        }
    }
}

// --- a handler whose future is too large to run in place ---------------------------------------

#[derive(DomainEvent)]
struct Bulky {
    value: u64,
}

#[event_handler(name = "bulky.sums")]
async fn sums(e: &Bulky, journal: Res<Journal>) -> Result<(), String> {
    let buffer = [e.value; 64];
    wait_once().await;
    let sum: u64 = buffer.iter().sum();
    journal.push(format!("sum {sum}"));
    if sum > 64 {
        return Err(format!("sum {sum} too large"));
    }
    Ok(())
}

#[test]
fn a_large_future_waits_and_fails_like_a_small_one() {
    for (config, bus, journal) in buses() {
        let (report, pending) = block_on(bus.dispatch(&Bulky { value: 1 }));
        let report = report.unwrap();
        assert!(report.is_ok(), "{config}: {report}");
        assert_eq!(pending, 1, "{config}");
        let (report, _) = block_on(bus.dispatch(&Bulky { value: 2 }));
        let report = report.unwrap();
        assert_eq!(
            report.failures()[0].to_string(),
            "handler `bulky.sums` failed: sum 128 too large",
            "{config}"
        );
        assert_eq!(journal.take(), ["sum 64", "sum 128"], "{config}");
    }
}

// --- metrics under `dispatch` -----------------------------------------------------------------

#[derive(DomainEvent)]
struct Metered;

#[event_handler(name = "metered.fails")]
async fn metered_fails(_: &Metered) -> Result<(), String> {
    wait_once().await;
    Err("no".into())
}

#[event_handler(name = "metered.panics")]
async fn metered_panics(_: &Metered) {
    panic!("metered");
}

#[test]
fn dispatches_and_failures_are_counted_when_a_recorder_is_installed() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Without `record_durations`: the plain walk.
    let bus = metrics::with_local_recorder(&recorder, || {
        let journal = Journal::default();
        Bus::builder().resource(journal).build().unwrap()
    });
    for _ in 0..2 {
        let (report, _) = block_on(bus.dispatch(&Metered));
        let report = report.unwrap();
        assert_eq!(report.failures().len(), 2, "{report}");
    }
    let counters: Vec<_> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.kind() == MetricKind::Counter)
        .map(|(key, _, _, value)| {
            let label = key.key().labels().next().map(|l| l.value().to_owned());
            (key.key().name().to_owned(), label, value)
        })
        .collect();
    for (name, label) in [
        ("events_dispatched_total", "Metered"),
        ("events_handler_failures_total", "metered.fails"),
        ("events_handler_failures_total", "metered.panics"),
    ] {
        let found = counters
            .iter()
            .find(|(n, l, _)| n == name && l.as_deref() == Some(label))
            .map(|(.., v)| v);
        assert_eq!(
            found,
            Some(&DebugValue::Counter(2)),
            "{name}{{{label}}} in {counters:?}"
        );
    }
}
