//! The real `async-worker` binary on PostgreSQL (a schema of its own per test, on the server
//! `EVENTS_POSTGRES_URL` points at): competing worker processes, one killed with SIGKILL
//! mid-stream, and application processes appending concurrently while a worker reads.

mod common;

#[path = "../../../events/tests/support/postgres.rs"]
mod pg;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::App;
use events::store::{EventStore, PostgresStore};

const HANDLER: &str = "orders.send_confirmation";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A migrated schema of its own, through the binary's `migrate` command.
fn app(test: &str, extra: &str) -> Option<(App, String)> {
    let url = runtime().block_on(pg::schema_url(test))?;
    let url = format!("{url}{extra}");
    let app = App::on(test, url.clone());
    let migrated = app.run(&["migrate"]);
    assert!(migrated.contains("migrated to version"), "{migrated}");
    Some((app, url))
}

/// Waits until `done()` (up to `limit`, far above what it takes); panics with `what` after.
fn wait(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_worker_processes_share_four_segments_and_survive_a_kill() {
    const EVENTS: u64 = 5000;
    let Some((app, _)) = app("pg_two_workers", "&segments=4") else {
        return;
    };
    assert_eq!(
        app.run(&["place-orders", &EVENTS.to_string(), "--customers", "50"])
            .trim(),
        "placed 5000 orders"
    );
    let args = [
        "process",
        HANDLER,
        "--lease-ttl",
        "1s",
        "--poll-interval",
        "50ms",
        "--concurrency",
        "2",
    ];
    let mut doomed = app.spawn(&args, 1);
    let survivor = app.spawn(&args, 1);
    wait(
        Duration::from_secs(120),
        "the workers made no progress",
        || app.handled().len() >= 1000,
    );
    doomed.kill().unwrap(); // SIGKILL, mid-stream
    assert!(!doomed.wait().unwrap().success());
    let at_kill = app.handled().len();
    assert!(at_kill < EVENTS as usize, "the kill should land mid-stream");

    // The survivor takes the dead worker's segments once their leases lapse (1 s).
    wait(
        Duration::from_secs(300),
        "the surviving worker did not finish the stream",
        || app.lag(HANDLER) == 0,
    );
    common::terminate(survivor);

    // In hand at the kill: at most the concurrency (2) per segment the dead worker held.
    let (deliveries, duplicates) = common::check_after_kill(&app, HANDLER, EVENTS, 8);
    println!(
        "{at_kill} handled at the kill, {deliveries} deliveries in all, {duplicates} duplicate(s)"
    );
}

#[test]
fn concurrent_appending_processes_are_delivered_in_commit_order_without_gaps() {
    const EACH: u64 = 400;
    // One segment and one event at a time: the worker reads the whole log in order, as a
    // single reader, and hands it to the handler in that order.
    let Some((app, url)) = app("pg_two_writers", "&segments=1") else {
        return;
    };
    let args = ["process", HANDLER, "--poll-interval", "20ms"];
    let worker = app.spawn(&[&args[..], &["--concurrency", "1"]].concat(), 0);
    let writers: Vec<_> = (0..2)
        .map(|_| {
            app.command(&["place-orders", &EACH.to_string(), "--customers", "7"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for writer in writers {
        let out = writer.wait_with_output().unwrap();
        assert!(out.status.success());
    }
    wait(
        Duration::from_secs(120),
        "the worker did not catch up",
        || app.lag(HANDLER) == 0,
    );
    common::terminate(worker);

    // The journal, mapped to log positions: exactly 1, 2, ..., 800, in that order.
    let positions: HashMap<String, u64> = runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        store
            .read_all(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.event_id.to_string(), e.position))
            .collect()
    });
    let delivered: Vec<u64> = app
        .handled()
        .iter()
        .map(|(_, id, ..)| positions[id.as_str()])
        .collect();
    assert_eq!(
        delivered,
        (1..=2 * EACH).collect::<Vec<_>>(),
        "in commit order, none skipped, none repeated"
    );
}
