//! The circuit breaker as an operator meets it, with the real binary: poison events next to
//! healthy ones do not stall the handler, and an open circuit shows in `status`, `--json` and
//! `--check` while the worker runs, until when.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{terminate, wait_for_exit, App};
use serde_json::Value;

fn status_json(app: &App) -> Value {
    let out = app.run(&["status", "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"))
}

fn handler<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["handler"] == name)
        .unwrap_or_else(|| panic!("{status}"))
}

#[test]
fn poison_events_next_to_healthy_ones_never_open_the_circuit() {
    let app = App::new("breaker-poison");
    // One order in five has no items: `orders.update_stock` fails it for good (2 attempts,
    // 10 ms apart), so the retries of the poison events come due together.
    app.run(&[
        "place-orders",
        "200",
        "--customers",
        "200",
        "--empty-every",
        "5",
    ]);
    let worker = worker(&app, &["--max-runtime", "4s"]);
    let out = wait_for_exit(worker, Duration::from_secs(60), "the worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("circuit open"), "{stderr}");
    let status = status_json(&app);
    let stock = handler(&status, "orders.update_stock");
    // Every healthy order went through, every poison one is a dead letter, nothing waits.
    assert_eq!(
        (
            &stock["lag"],
            &stock["retrying"],
            &stock["dead"],
            &stock["held"]
        ),
        (
            &Value::from(0),
            &Value::from(0),
            &Value::from(40),
            &Value::from(0)
        ),
        "{status}\n{stderr}"
    );
    assert_eq!(stock["circuits"], Value::Array(vec![]), "{status}");
    let handled = app
        .handled()
        .into_iter()
        .filter(|(h, ..)| h == "orders.update_stock")
        .count();
    assert_eq!(handled, 160);
}

/// Spawns `process orders.update_stock` with a breaker that opens after 3 failures, for an
/// hour, polling every 20 ms, with `extra` arguments.
fn worker(app: &App, extra: &[&str]) -> Child {
    let mut args = vec![
        "process",
        "orders.update_stock",
        "--breaker-after",
        "3",
        "--breaker-cooldown",
        "1h",
        "--poll-interval",
        "20ms",
    ];
    args.extend_from_slice(extra);
    app.command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn an_open_circuit_shows_in_status_until_when_and_fails_the_check() {
    let app = App::new("breaker-status");
    // Every order is poison: the first three fresh ones fail in a row.
    app.run(&[
        "place-orders",
        "20",
        "--customers",
        "20",
        "--empty-every",
        "1",
    ]);
    let child = worker(&app, &[]);
    let started = Instant::now();
    let circuits = loop {
        let status = status_json(&app);
        let circuits = handler(&status, "orders.update_stock")["circuits"].clone();
        if circuits.as_array().is_some_and(|c| !c.is_empty()) {
            break circuits;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no open circuit in status after 30 s: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let circuit = &circuits[0];
    assert_eq!(
        (&circuit["segment"], &circuit["failures"]),
        (&Value::from(0), &Value::from(3))
    );
    let closes_in = circuit["closes_in_seconds"].as_u64().unwrap();
    assert!((3_500..=3_600).contains(&closes_in), "{circuit}");
    assert!(
        circuit["open_until"].as_str().unwrap().starts_with("20"),
        "{circuit}"
    );

    let text = app.run(&["status"]);
    assert!(
        text.contains("open circuits")
            && text.contains("orders.update_stock: circuit open on segment 0 until ")
            && text.contains("after 3 fresh events failed in a row"),
        "{text}"
    );
    let check = app.output(&["status", "--check"]);
    assert_eq!(check.status.code(), Some(3), "{check:?}");
    let check = String::from_utf8_lossy(&check.stdout);
    assert!(check.contains("circuit open on segment 0"), "{check}");

    // A worker that stops releases its segment: no circuit is left behind.
    terminate(child);
    let status = status_json(&app);
    assert_eq!(
        handler(&status, "orders.update_stock")["circuits"],
        Value::Array(vec![])
    );
}
