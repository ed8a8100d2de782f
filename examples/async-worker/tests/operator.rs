//! The operator's experience of the embedded CLI, run as the real binary (issue 14): which
//! store a command opened (and never creating one by reading), `--json`, `status --check`
//! exit codes, ages and next attempts, the application's own command beside the CLI's in one
//! `--help`, what `process` says without a logger, aligned tables, and `log`.

mod common;

use std::time::Duration;

use common::{last_line, status_table, App, Table, DEAD_LETTER_COLUMNS};
use serde_json::Value;

/// Parses a command's stdout as JSON.
fn json(app: &App, args: &[&str]) -> Value {
    let out = app.run(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
}

#[test]
fn read_only_commands_never_create_the_store() {
    let app = App::new("op-readonly");
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "--check"],
        &["dead-letters"],
        &["log"],
        &["retry", "--all"],
        &["drop", "1"],
    ] {
        let out = app.output(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "error: cannot open the event store {}: it does not exist (this command only reads and creates none); check the path, or create the store first",
                app.db.display()
            ),
            "{args:?}"
        );
        assert!(!app.db.exists(), "{args:?} created {}", app.db.display());
    }
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["graph"],
        &["--help"],
        &["--version"],
        &["status", "--help"],
        &["place-orders", "--help"],
    ] {
        app.run(args);
        assert!(!app.db.exists(), "{args:?} created {}", app.db.display());
    }
    // The same through `--database-url`.
    let url = format!("sqlite://{}", app.db.with_file_name("other.db").display());
    let out = app.output(&["status", "--database-url", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!app.db.with_file_name("other.db").exists());
    // Commands that write create it.
    app.run(&["migrate"]);
    assert!(app.db.exists());
}

#[test]
fn every_command_names_its_store_and_json_stays_clean() {
    let app = App::new("op-store-line");
    app.run(&["place-orders", "3"]);
    let location = format!("store: sqlite://{}", app.db.display());
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["dead-letters", "--json"],
        &["log", "--json"],
        &["retry", "--all"],
        &["process", "--all", "--max-runtime", "100ms"],
    ] {
        let out = app.output(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().next(), Some(location.as_str()), "{args:?}");
        if args.contains(&"--json") {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let value: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(
                value["store"],
                location.trim_start_matches("store: "),
                "{stdout}"
            );
        }
    }
    // `list` and `graph` read the program's catalog, not a store.
    let out = app.output(&["list"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_output_has_the_documented_fields() {
    let app = App::new("op-json");
    let list = json(&app, &["list", "--json"]);
    let placed = &list["events"][0];
    assert_eq!(placed["name"], "orders.order_placed");
    assert_eq!(placed["version"], 1);
    let handlers: Vec<_> = placed["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap(), h["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        handlers,
        [
            ("orders.send_confirmation", "durable"),
            ("orders.update_stock", "durable")
        ]
    );
    assert_eq!(
        placed["handlers"][1]["resources"],
        serde_json::json!(["async_worker::Journal"])
    );
    assert!(placed["handlers"][0]["location"]
        .as_str()
        .unwrap()
        .starts_with("examples/async-worker/src/main.rs:"));

    app.run(&[
        "place-orders",
        "8",
        "--customers",
        "2",
        "--empty-every",
        "4",
    ]);
    app.run(&[
        "process",
        "--all",
        "--max-runtime",
        "1s",
        "--poll-interval",
        "20ms",
    ]);
    let status = json(&app, &["status", "--json"]);
    assert_eq!(status["log_head"], 8);
    let stock = &status["handlers"][1];
    assert_eq!(stock["handler"], "orders.update_stock");
    assert_eq!(stock["event"], "orders.order_placed");
    for (field, value) in [
        ("checkpoint", 8),
        ("lag", 0),
        ("retrying", 0),
        ("dead", 1),
        ("held", 2),
    ] {
        assert_eq!(stock[field], value, "{field}: {status}");
    }
    assert!(stock["oldest_undelivered_at"].is_null() && stock["lag_age_seconds"].is_null());
    assert!(stock["next_retry_at"].is_null());
    assert_eq!(stock["leases"], serde_json::json!([]));
    assert_eq!(status["orphaned_checkpoints"], serde_json::json!([]));
    assert_eq!(status["problems"].as_array().unwrap().len(), 1, "{status}");

    let dead = json(&app, &["dead-letters", "--json"]);
    let failures = dead["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{dead}");
    let f = &failures[0];
    assert_eq!(f["handler"], "orders.update_stock");
    assert_eq!(f["status"], "dead");
    assert_eq!(f["position"], 4);
    assert_eq!(f["aggregate"], "Customer/0");
    assert_eq!(f["attempts"], 2);
    assert_eq!(f["held_behind"], 2);
    assert!(f["next_attempt_at"].is_null());
    assert!(f["id"].is_i64());
    // The full error text, lines and all.
    assert_eq!(
        f["last_error"],
        "stock service rejected order 4: no items\n  request: POST /stock/reservations {\"order\": 4, \"customer\": 0, \"items\": 0}\n  response: 422 Unprocessable Entity: a reservation needs at least one item"
    );
    let occurred = f["occurred_at"].as_str().unwrap();
    let failed = f["last_attempt_at"].as_str().unwrap();
    assert!(
        occurred.ends_with('Z') && occurred.len() == 24,
        "{occurred}"
    );
    assert!(failed >= occurred, "{failed} before {occurred}");

    let log = json(&app, &["log", "--json", "--limit", "2"]);
    assert_eq!(log["more"], true);
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let e = &events[1];
    assert_eq!(e["position"], 2);
    assert_eq!(e["name"], "orders.order_placed");
    assert_eq!(e["version"], 1);
    assert_eq!(e["aggregate_type"], "Customer");
    assert_eq!(e["aggregate_id"], "0");
    assert_eq!(e["sequence"], 1);
    assert_eq!(
        e["payload"],
        serde_json::json!({"customer": 0, "order": 2, "items": 3})
    );
    assert_eq!(e["correlation_id"], e["event_id"], "a chain of one");
    assert!(e["causation_id"].is_null());
    assert_eq!(e["fields"], serde_json::json!({}));
}

#[test]
fn status_check_exits_3_with_one_line_per_problem() {
    let app = App::new("op-check");
    app.run(&["place-orders", "6", "--customers", "2"]);
    // Healthy enough: 6 events behind is within --max-lag 6, and nothing is dead.
    let out = app.output(&["status", "--check", "--max-lag", "6"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: 2 durable handlers, log head at position 6\n"
    );

    // Waits past the age limit (1 s), so the oldest undelivered event is older than it.
    std::thread::sleep(Duration::from_millis(1_100));
    let out = app.output(&["status", "--check", "--max-lag", "5", "--max-lag-age", "1s"]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(
        lines[0],
        "orders.send_confirmation: 6 events behind (more than --max-lag 5); is its worker running?"
    );
    assert!(
        lines[1].starts_with("orders.send_confirmation: its oldest undelivered event is ")
            && lines[1].ends_with(" old (more than --max-lag-age 1s); is its worker running?"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("orders.update_stock: 6 events behind"),
        "{stdout}"
    );

    // A dead letter fails the check by default.
    app.run(&[
        "place-orders",
        "2",
        "--customers",
        "1",
        "--empty-every",
        "1",
    ]);
    app.run(&[
        "process",
        "--all",
        "--max-runtime",
        "1s",
        "--poll-interval",
        "20ms",
    ]);
    let out = app.output(&["status", "--check"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "orders.update_stock: 1 dead letter (more than 0); see `dead-letters --handler orders.update_stock`, then `retry` or `drop` them\n"
    );
    let out = app.output(&["status", "--check", "--max-dead", "1"]);
    assert_eq!(out.status.code(), Some(0));
    // Thresholds only make sense with --check: clap refuses them alone.
    assert_eq!(
        app.output(&["status", "--max-lag", "3"]).status.code(),
        Some(2)
    );
}

#[test]
fn lag_and_failures_show_their_age_and_next_attempt() {
    let app = App::new("op-times");
    app.run(&[
        "place-orders",
        "4",
        "--customers",
        "1",
        "--empty-every",
        "2",
    ]);
    // Waits past a second so the ages read at least 1s.
    std::thread::sleep(Duration::from_millis(1_100));
    let status = app.run(&["status"]);
    let table = status_table(&status);
    let lag_age = &table.row("HANDLER", "orders.update_stock").unwrap()["LAG AGE"];
    assert!(
        lag_age.ends_with('s') && lag_age.trim_end_matches('s').parse::<u64>().unwrap() >= 1,
        "{status}"
    );
    let json: Value = serde_json::from_str(&app.run(&["status", "--json"])).unwrap();
    assert!(json["handlers"][1]["lag_age_seconds"].as_u64().unwrap() >= 1);
    assert!(json["handlers"][1]["oldest_undelivered_at"].is_string());

    app.process_for_a_second("orders.update_stock");
    let dead = app.run(&["dead-letters"]);
    let table = Table::parse(dead.lines(), &DEAD_LETTER_COLUMNS);
    let row = &table.rows[0];
    assert_eq!(row["STATUS"], "dead");
    assert!(row["AGE"].ends_with('s') && row["AGE"] != "0s", "{dead}");
    assert!(row["LAST ATTEMPT"].ends_with("s ago"), "{dead}");
    assert_eq!(row["NEXT ATTEMPT"], "-");

    // Retried by the operator, it is a retry due now, with its time.
    app.run(&["retry", "--all"]);
    let dead = app.run(&["dead-letters"]);
    let table = Table::parse(dead.lines(), &DEAD_LETTER_COLUMNS);
    assert_eq!(table.rows[0]["STATUS"], "retrying");
    assert_eq!(table.rows[0]["NEXT ATTEMPT"], "due");
    let json: Value = serde_json::from_str(&app.run(&["dead-letters", "--json"])).unwrap();
    assert!(json["failures"][0]["next_attempt_at"].is_string());
    let status = app.run(&["status"]);
    let table = status_table(&status);
    let stock = table.row("HANDLER", "orders.update_stock").unwrap();
    assert_eq!(
        (stock["RETRYING"].as_str(), stock["NEXT RETRY"].as_str()),
        ("1", "due")
    );
    let detail = app.run(&["dead-letters", "--handler", "orders.update_stock"]);
    assert!(detail.contains("\n  next attempt: 20"), "{detail}");
}

#[test]
fn the_application_command_is_in_help_and_its_help_places_nothing() {
    let app = App::new("op-help");
    let help = app.run(&["--help"]);
    for command in [
        "place-orders",
        "process",
        "status",
        "dead-letters",
        "log",
        "replay",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from --help:\n{help}"
        );
    }
    assert!(
        help.contains("--database-url") && help.contains("--metrics-addr"),
        "{help}"
    );
    assert_eq!(
        app.run(&["--version"]).trim(),
        format!("async-worker {}", env!("CARGO_PKG_VERSION"))
    );

    app.run(&["place-orders", "3"]);
    let help = app.run(&["place-orders", "--help"]);
    assert!(
        help.contains("Usage: async-worker place-orders [OPTIONS] [COUNT]"),
        "{help}"
    );
    let out = app.run(&["place-orders", "-h"]);
    assert!(out.contains("Usage:"), "{out}");
    assert!(app.run(&["status"]).starts_with("log head: position 3\n"));
    // A mistake is refused, and places nothing either.
    assert_eq!(app.output(&["place-orders", "ten"]).status.code(), Some(2));
    assert_eq!(
        app.output(&["place-orders", "3", "--customers", "0"])
            .status
            .code(),
        Some(2)
    );
    assert!(app.run(&["status"]).starts_with("log head: position 3\n"));
}

#[test]
fn process_says_what_it_does_without_a_logger() {
    let app = App::new("op-feedback");
    app.run(&["place-orders", "4", "--empty-every", "4"]);
    let out = app
        .command(&[
            "process",
            "--all",
            "--max-runtime",
            "1s",
            "--poll-interval",
            "20ms",
            "--progress-every",
            "200ms",
        ])
        .env("NO_LOGGER", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let find = |needle: &str| {
        log.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
    };
    let start = find("worker starting");
    assert!(
        log.lines()
            .nth(start)
            .unwrap()
            .contains("handlers=orders.send_confirmation, orders.update_stock max_runtime=1s"),
        "{log}"
    );
    let progress = find(
        "progress handler=\"orders.update_stock\" checkpoint=4 lag=0 retrying=0 dead=1 held=0",
    );
    let stop = find("worker stopping: maximum run time reached");
    assert!(start < progress && progress < stop, "{log}");
    assert!(!log.contains('\u{1b}'), "plain lines, no colours:\n{log}");

    // With the application's own logger (warnings only), its choice holds.
    let out = app.output(&["process", "--all", "--max-runtime", "300ms"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("worker starting"), "{log}");
}

#[test]
fn tables_stay_aligned_with_long_multi_line_errors() {
    let app = App::new("op-align");
    app.run(&[
        "place-orders",
        "12",
        "--customers",
        "3",
        "--empty-every",
        "4",
    ]);
    app.process_for_a_second("orders.update_stock");
    let dead = app.run(&["dead-letters"]);
    // One line per dead letter, every cell under its header (Table::parse checks).
    assert_eq!(dead.lines().count(), 4, "{dead}");
    let table = Table::parse(dead.lines(), &DEAD_LETTER_COLUMNS);
    for row in &table.rows {
        let error = &row["LAST ERROR"];
        assert_eq!(error.chars().count(), 60, "{dead}");
        assert!(error.ends_with('…'), "{dead}");
        assert!(
            error.contains("no items request: POST"),
            "flattened: {dead}"
        );
    }
    // The detail has the full text, line by line.
    let detail = app.run(&["dead-letters", "--handler", "orders.update_stock"]);
    assert!(
        detail.contains("  last error:\n    stock service rejected order 4: no items\n      request: POST /stock/reservations {\"order\": 4, \"customer\": 1, \"items\": 0}\n      response: 422 Unprocessable Entity: a reservation needs at least one item\n"),
        "{detail}"
    );
    assert!(detail.contains("  next attempt: none; `retry "), "{detail}");
    assert!(detail.contains("  event occurred: 20"), "{detail}");
}

/// Writes events as a chain producer would (the root, then follow-ups that name their cause),
/// into the app's store, through the library.
fn write_chain(app: &App) -> (String, Vec<String>) {
    use events::store::{AppendAt, DurableStore, EventMetadata, NewEvent, SqliteStore, StreamId};
    let store = SqliteStore::open(&app.db).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let append = |customer: u32, order: u64, event_id: uuid::Uuid, metadata: EventMetadata| {
        let id = customer.to_string();
        let event = NewEvent {
            event_id,
            name: "orders.order_placed".into(),
            version: 1,
            payload: serde_json::json!({"customer": customer, "order": order, "items": 1}),
            metadata,
            occurred_at: std::time::SystemTime::now(),
        };
        let stream = StreamId {
            aggregate_type: "Customer",
            aggregate_id: &id,
        };
        runtime
            .block_on(DurableStore::append_to(
                &store,
                AppendAt::End(stream),
                vec![event],
            ))
            .unwrap()[0]
            .event_id
    };
    let new_id = uuid::Uuid::now_v7;
    let caused = |root, cause| EventMetadata {
        correlation_id: Some(root),
        causation_id: Some(cause),
        ..EventMetadata::default()
    };
    // 1 root; 2 unrelated; 3 caused by 5 (a writer that committed before its cause's
    // writer); 4 caused by the root; 5 caused by 4, with the id 3 named as its cause.
    let root = append(1, 1, new_id(), EventMetadata::default());
    append(2, 2, new_id(), EventMetadata::default());
    let late = new_id();
    let third = append(1, 3, new_id(), caused(root, late));
    let fourth = append(2, 4, new_id(), caused(root, root));
    let fifth = append(2, 5, late, caused(root, fourth));
    (
        root.to_string(),
        [root, fourth, fifth, third]
            .iter()
            .map(ToString::to_string)
            .collect(),
    )
}

#[test]
fn log_filters_by_aggregate_name_range_and_correlation_chain() {
    let app = App::new("op-log");
    let (root, chain) = write_chain(&app);
    let log = app.run(&["log"]);
    let columns = [
        "POSITION",
        "OCCURRED AT",
        "NAME",
        "AGGREGATE",
        "SEQ",
        "EVENT ID",
        "CAUSED BY",
        "PAYLOAD",
    ];
    let table = Table::parse(log.lines(), &columns);
    let positions = |t: &Table| {
        t.rows
            .iter()
            .map(|r| r["POSITION"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(positions(&table), ["1", "2", "3", "4", "5"]);
    assert_eq!(table.rows[0]["AGGREGATE"], "Customer/1");
    assert_eq!(
        table.rows[0]["PAYLOAD"],
        r#"{"customer":1,"items":1,"order":1}"#
    );
    assert_eq!(table.rows[0]["CAUSED BY"], "-");
    assert_eq!(table.rows[3]["CAUSED BY"], root);

    let run = |args: &[&str]| Table::parse(app.run(args).lines(), &columns);
    assert_eq!(
        positions(&run(&["log", "--aggregate", "Customer/2"])),
        ["2", "4", "5"]
    );
    assert_eq!(
        positions(&run(&["log", "--from", "2", "--to", "3"])),
        ["2", "3"]
    );
    assert_eq!(
        positions(&run(&[
            "log",
            "--name",
            "orders.order_placed",
            "--from",
            "4"
        ])),
        ["4", "5"]
    );
    // The chain: the root, then each event after its cause (5 before 3, which it caused).
    let chain_table = run(&["log", "--correlation", &root]);
    let ids: Vec<_> = chain_table
        .rows
        .iter()
        .map(|r| r["EVENT ID"].clone())
        .collect();
    assert_eq!(ids, chain);
    assert_eq!(positions(&chain_table), ["1", "4", "5", "3"]);
    let json: Value =
        serde_json::from_str(&app.run(&["log", "--correlation", &root, "--json"])).unwrap();
    let ids: Vec<_> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, chain);
    assert!(json["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["correlation_id"] == root.as_str()));

    // --limit says when it cut the list.
    let out = app.output(&["log", "--limit", "2"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert_eq!(
        last_line(&out.stderr),
        "showing the first 2 events; more match: raise --limit or narrow with --from/--to"
    );
    assert_eq!(
        app.run(&["log", "--name", "orders.nothing"]),
        "no events match\n"
    );
    // Bad filters are refused in one line.
    let out = app.output(&["log", "--aggregate", "Customer"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_line(&out.stderr),
        "error: --aggregate `Customer` is not `Type/id`; write it as `dead-letters` shows it, e.g. `--aggregate Customer/42`"
    );
    let out = app.output(&["log", "--from", "4", "--to", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        app.output(&["log", "--correlation", "nope"]).status.code(),
        Some(2)
    );
}
