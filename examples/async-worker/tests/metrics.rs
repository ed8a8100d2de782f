//! The Prometheus endpoint of a real worker process (`--metrics-addr`), scraped over HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, http_get, App, Running};

/// The value of the series `series` (name and labels, as printed) in a scrape.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[test]
fn the_endpoint_serves_counters_histograms_and_durable_gauges() {
    let app = App::new("metrics");
    let before_orders = Instant::now();
    // Two customers; orders 3 and 6 have no items: the stock handler dead-letters them (after
    // 2 attempts each), and order 5, of order 3's customer, is held back behind it.
    app.run(&[
        "place-orders",
        "6",
        "--customers",
        "2",
        "--empty-every",
        "3",
    ]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _worker = Running(app.spawn(
        &[
            "--metrics-addr",
            &addr,
            "process",
            "orders.update_stock",
            "--poll-interval",
            "20ms",
        ],
        0,
    ));

    // Until the gauges show the stock handler done with the log (far above what it takes).
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = |s: &str| {
        value(
            s,
            r#"events_durable_dead_letters{handler="orders.update_stock"}"#,
        ) == Some(2.0)
            && value(
                s,
                r#"events_durable_lag_events{handler="orders.update_stock"}"#,
            ) == Some(0.0)
    };
    let metrics = loop {
        let last = http_get(port, "/metrics");
        if let Ok(body) = &last {
            if settled(body) {
                break body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the worker's metrics never settled; last scrape: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let scraped_after = before_orders.elapsed().as_secs_f64();
    let get = |series: &str| {
        value(&metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };

    // The bus's counters and histogram, as the worker delivered: 3 orders handled, 2 orders
    // failed twice each. The worker stores nothing new, so it dispatched nothing.
    assert_eq!(
        get(r#"events_dispatched_total{event="orders.order_placed"}"#),
        0.0
    );
    assert_eq!(
        get(r#"events_handler_failures_total{handler="orders.update_stock"}"#),
        4.0
    );
    assert_eq!(
        get(r#"events_handler_failures_total{handler="orders.send_confirmation"}"#),
        0.0
    );
    assert_eq!(
        get(r#"events_handler_duration_seconds_count{handler="orders.update_stock"}"#),
        7.0
    );
    assert_eq!(
        get(r#"events_handler_duration_seconds_bucket{handler="orders.update_stock",le="+Inf"}"#),
        7.0
    );
    assert!(get(r#"events_handler_duration_seconds_sum{handler="orders.update_stock"}"#) > 0.0);

    // The stock handler: done with the log, 2 dead letters, order 5 held back.
    let stock = |gauge: &str| get(&format!(r#"{gauge}{{handler="orders.update_stock"}}"#));
    assert_eq!(stock("events_durable_lag_events"), 0.0);
    assert_eq!(stock("events_durable_lag_seconds"), 0.0);
    assert_eq!(stock("events_durable_retrying"), 0.0);
    assert_eq!(stock("events_durable_dead_letters"), 2.0);
    assert_eq!(stock("events_durable_held_back"), 1.0);

    // The confirmation handler, which no worker runs here: all 6 orders behind, the oldest
    // placed after `before_orders` and before the scrape.
    let confirm = |gauge: &str| get(&format!(r#"{gauge}{{handler="orders.send_confirmation"}}"#));
    assert_eq!(confirm("events_durable_lag_events"), 6.0);
    let lag_seconds = confirm("events_durable_lag_seconds");
    assert!(
        lag_seconds > 0.0 && lag_seconds <= scraped_after,
        "lag {lag_seconds} s, orders placed {scraped_after} s before the scrape"
    );
    assert_eq!(confirm("events_durable_retrying"), 0.0);
    assert_eq!(confirm("events_durable_dead_letters"), 0.0);
    assert_eq!(confirm("events_durable_held_back"), 0.0);
    assert_eq!(get("events_durable_gauge_errors_total"), 0.0);
}

#[test]
fn a_bad_metrics_address_is_refused_in_one_line() {
    let app = App::new("metrics-bad-addr");
    let out = app.output(&["--metrics-addr", "localhost", "status"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.lines().next().unwrap(),
        "error: invalid value 'localhost' for '--metrics-addr <ADDR>': not an address (invalid socket address syntax); write e.g. 127.0.0.1:9000"
    );
}

/// Serving metrics does not open the store: a command that only reads still creates none (the
/// gauges are sampled from the store the command itself opened).
#[test]
fn serving_metrics_keeps_read_only_commands_from_creating_the_store() {
    let app = App::new("metrics-read-only");
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let out = app.output(&["--metrics-addr", &addr, "status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("it does not exist"), "{stderr}");
    assert!(!app.db.exists(), "status created {}", app.db.display());
}
