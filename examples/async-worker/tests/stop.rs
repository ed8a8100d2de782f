//! A worker with blocking handlers on a current-thread runtime (this example's own set-up)
//! stops between two deliveries on SIGTERM or at `--max-runtime`, and the handlers of one
//! worker take turns (issue 9, item 9).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{wait_for_exit, App};

/// Deliveries per handler in the journal.
fn per_handler(app: &App) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for (handler, ..) in app.handled() {
        *count.entry(handler).or_default() += 1;
    }
    count
}

#[test]
fn sigterm_stops_a_blocking_worker_between_deliveries_and_handlers_take_turns() {
    let app = App::new("stop-sigterm");
    app.run(&["place-orders", "30", "--customers", "3"]);
    // 2 handlers x 30 events x 300 ms: 18 s of work if nothing stopped it.
    let worker = app.spawn(&["process", "--all", "--poll-interval", "20ms"], 300);
    let started = Instant::now();
    while app.handled().len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = wait_for_exit(worker, Duration::from_secs(120), "worker after SIGTERM");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");

    let count = per_handler(&app);
    let total: usize = count.values().sum();
    assert!(
        total < 60,
        "SIGTERM was ignored until the backlog was done: {count:?}"
    );
    assert!(
        count.contains_key("orders.send_confirmation") && count.contains_key("orders.update_stock"),
        "one handler starved behind the other's backlog: {count:?}"
    );
    assert!(app.lag("orders.send_confirmation") > 0 && app.lag("orders.update_stock") > 0);
}

#[test]
fn max_runtime_stops_a_blocking_worker_between_deliveries() {
    let app = App::new("stop-runtime");
    app.run(&["place-orders", "30", "--customers", "3"]);
    let worker = app.spawn(
        &["process", "orders.send_confirmation", "--max-runtime", "1s"],
        300,
    );
    let out = wait_for_exit(
        worker,
        Duration::from_secs(120),
        "worker with --max-runtime 1s",
    );
    assert!(out.status.success());
    let handled = app.handled().len();
    assert!(
        (1..30).contains(&handled),
        "--max-runtime was ignored until the backlog was done: {handled} handled"
    );
    assert_eq!(app.lag("orders.send_confirmation"), 30 - handled as u64);
}
