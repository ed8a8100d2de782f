//! `record-flows --metrics-addr ADDR` serves Prometheus metrics and prints its own scrape.

use std::net::TcpListener;

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_record-flows"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_run_prints_its_own_scrape() {
    // A port nobody listens on now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = run(&["--metrics-addr", &addr]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let heading = format!("Prometheus metrics (GET http://{addr}/metrics, buckets left out):");
    let (_, scrape) = stdout
        .split_once(&heading)
        .unwrap_or_else(|| panic!("no scrape in:\n{stdout}"));
    let value = |series: &str| -> f64 {
        scrape
            .lines()
            .find_map(|l| {
                l.strip_prefix("  ")?
                    .strip_prefix(series)?
                    .strip_prefix(' ')
            })
            .unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
            .parse()
            .unwrap()
    };
    // The in-process flows: one form, two records created (one by the form), one deleted.
    assert_eq!(
        value(r#"events_dispatched_total{event="forms.form_submitted"}"#),
        1.0
    );
    assert_eq!(
        value(r#"events_dispatched_total{event="tables.record_created"}"#),
        2.0
    );
    assert_eq!(
        value(r#"events_dispatched_total{event="tables.record_deleted"}"#),
        1.0
    );
    // Record 100's webhook failed; the audit ran (and was timed) for both records.
    assert_eq!(
        value(r#"events_handler_failures_total{handler="webhooks.record_created"}"#),
        1.0
    );
    assert_eq!(
        value(r#"events_handler_failures_total{handler="tables.audit"}"#),
        0.0
    );
    assert_eq!(
        value(r#"events_handler_duration_seconds_count{handler="tables.audit"}"#),
        2.0
    );
    // The durable path: 12 webhook attempts, 6 of them failed; at the end nothing is pending.
    assert_eq!(
        value(r#"events_handler_failures_total{handler="webhooks.record_updated"}"#),
        6.0
    );
    assert_eq!(
        value(r#"events_handler_duration_seconds_count{handler="webhooks.record_updated"}"#),
        12.0
    );
    for handler in ["search.reindex_records", "webhooks.record_updated"] {
        for gauge in [
            "events_durable_lag_events",
            "events_durable_lag_seconds",
            "events_durable_retrying",
            "events_durable_dead_letters",
            "events_durable_held_back",
        ] {
            assert_eq!(value(&format!(r#"{gauge}{{handler="{handler}"}}"#)), 0.0);
        }
    }
}

#[test]
fn without_the_flag_nothing_is_served_or_printed() {
    let out = run(&[]);
    assert!(out.status.success());
    assert!(!String::from_utf8(out.stdout)
        .unwrap()
        .contains("Prometheus"));
}

#[test]
fn a_bad_argument_is_refused_in_one_line() {
    let out = run(&["--metrics-addr", "localhost"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("--metrics-addr `localhost` is not an address"),
        "{stderr}"
    );
}
