//! A worker process is killed with SIGKILL in the middle of a stream of thousands of events,
//! restarted, and nothing is lost: every event handled at least once, per-aggregate order kept,
//! duplicates only for the events in hand (at most the worker's concurrency).

mod common;

use std::time::{Duration, Instant};

use common::App;

const EVENTS: u64 = 3000;
const HANDLER: &str = "orders.send_confirmation";

#[test]
fn a_killed_worker_loses_nothing() {
    let app = App::new("crash");
    assert_eq!(
        app.run(&["place-orders", &EVENTS.to_string(), "--customers", "7"])
            .trim(),
        "placed 3000 orders"
    );

    // Each delivery takes about a millisecond: the kill lands mid-stream.
    let args = [
        "process",
        HANDLER,
        "--lease-ttl",
        "1s",
        "--poll-interval",
        "50ms",
        "--concurrency",
        "4",
    ];
    let mut worker = app.spawn(&args, 1);
    let started = Instant::now();
    while app.handled().len() < 300 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the worker made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    worker.kill().unwrap(); // SIGKILL
    let status = worker.wait().unwrap();
    assert!(!status.success());
    let before_restart = app.handled().len();
    assert!(
        before_restart < EVENTS as usize,
        "the kill should land mid-stream"
    );

    // The supervisor restarts it; the dead worker's lease expires after a second.
    let worker = app.spawn(&args, 0);
    let started = Instant::now();
    while app.lag(HANDLER) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the restarted worker did not catch up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    common::terminate(worker);
    let (deliveries, duplicates) = common::check_after_kill(&app, HANDLER, EVENTS, 4);
    println!(
        "{before_restart} handled before the kill, {deliveries} deliveries in all, {duplicates} duplicate(s)"
    );
}
