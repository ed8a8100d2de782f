//! A worker that stalls past its lease cannot record anything once another worker took the
//! handler over (issue 9, item 11): real processes, SIGSTOP and SIGCONT.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{wait_for_exit, App};

const HANDLER: &str = "orders.send_confirmation";

/// The process state letter from /proc (`T`: stopped).
fn state(child: &Child) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.chars().next().unwrap()
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

/// Polls `done` every 20 ms; panics after two minutes (far above what any step takes).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(120), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The handler's columns in `status`, by header.
fn status(app: &App) -> std::collections::BTreeMap<String, String> {
    let status = app.run(&["status"]);
    common::status_table(&status)
        .row("HANDLER", HANDLER)
        .unwrap_or_else(|| panic!("{status}"))
        .clone()
}

#[test]
fn a_worker_stalled_past_its_lease_cannot_settle_after_a_takeover() {
    stalled_past_its_lease("fencing", 1);
}

/// With events in flight beside the stalled one, those too are handled again by the new
/// holder (never more than the concurrency), and the stalled worker records none of them.
#[test]
fn a_worker_with_events_in_flight_stalled_past_its_lease_cannot_settle_them() {
    stalled_past_its_lease("fencing_concurrent", 4);
}

fn stalled_past_its_lease(test: &str, concurrency: usize) {
    let app = App::new(test);
    app.run(&["place-orders", "30", "--customers", "3"]);
    let concurrency_arg = concurrency.to_string();
    let args = [
        "process",
        HANDLER,
        "--lease-ttl",
        "1s",
        "--poll-interval",
        "20ms",
        "--max-runtime",
        "120s",
        "--concurrency",
        &concurrency_arg,
    ];

    // Worker A freezes itself while handling order 5 (and reports that attempt as failed).
    let a = app
        .command(&args)
        .env("STALL_ON_ORDER", "5")
        .env("HANDLER_DELAY_MS", "10")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("A stops itself at order 5", || state(&a) == 'T');
    wait_until("A's lease lapses", || status(&app)["LEASE"] == "-");

    // Worker B takes the handler over and delivers everything.
    let b = app.spawn(&args, 0);
    wait_until("B catches up", || app.lag(HANDLER) == 0);

    // A resumes with its failed attempt of order 5 in hand: it must not record it.
    signal(&a, "CONT");
    wait_until("A runs again", || state(&a) != 'T');
    signal(&a, "TERM");
    let a_out = wait_for_exit(a, Duration::from_secs(120), "A after SIGTERM");
    let a_err = String::from_utf8_lossy(&a_out.stderr);
    assert!(a_out.status.success(), "{a_err}");

    // Nothing pending: B settles anything A might have left, then stops.
    wait_until("no failure pending", || {
        let s = status(&app);
        (
            s["RETRYING"].as_str(),
            s["DEAD"].as_str(),
            s["HELD"].as_str(),
        ) == ("0", "0", "0")
    });
    signal(&b, "TERM");
    let b_out = wait_for_exit(b, Duration::from_secs(120), "B after SIGTERM");
    assert!(b_out.status.success());

    let mut times: BTreeMap<u64, usize> = BTreeMap::new();
    for (.., order) in app.handled() {
        *times.entry(order).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(times.len(), 30, "every order handled");
    // One at a time, A had nothing else in hand; with more in flight, what A had started
    // beside order 5 is handled again by B (A recorded none of it).
    assert!(
        twice.len() < concurrency && twice.iter().all(|(_, n)| **n == 2),
        "handled more than once: {twice:?}"
    );
    assert!(
        a_err.contains("lost the lease to another worker"),
        "{a_err}"
    );
}
