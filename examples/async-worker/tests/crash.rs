//! A worker process is killed with SIGKILL in the middle of a stream of thousands of events,
//! restarted, and nothing is lost: every event handled at least once, per-aggregate order kept,
//! duplicates only for the event in flight.

mod common;

use std::collections::{BTreeMap, HashMap};
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
    let pid = worker.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = worker.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIGTERM is a clean stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let handled: Vec<_> = app
        .handled()
        .into_iter()
        .filter(|(h, ..)| h == HANDLER)
        .collect();
    let mut times: HashMap<&str, u32> = HashMap::new();
    for (_, id, ..) in &handled {
        *times.entry(id).or_default() += 1;
    }
    assert_eq!(
        times.len() as u64,
        EVENTS,
        "every event handled at least once"
    );
    let duplicates: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.len() <= 1,
        "only the event in flight may be handled twice: {duplicates:?}"
    );
    assert!(duplicates.iter().all(|(_, n)| **n == 2));

    // Per customer (the aggregate), orders arrive in the order they were placed (a redelivered
    // event repeats itself, it never jumps back further).
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for (_, _, customer, order) in &handled {
        let previous = last.insert(*customer, *order).unwrap_or(0);
        assert!(
            *order >= previous,
            "customer {customer}: order {order} after {previous}"
        );
    }
    println!(
        "{before_restart} handled before the kill, {} deliveries in all, {} duplicate(s)",
        handled.len(),
        duplicates.len()
    );
}
