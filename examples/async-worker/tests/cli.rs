//! The operator CLI, run as the real binary: list, process, status, dead-letters, retry, drop,
//! replay, graph.

mod common;

use common::App;

#[test]
fn an_operator_session() {
    let app = App::new("cli");

    let list = app.run(&["list"]);
    let lines: Vec<_> = list.lines().collect();
    assert!(
        lines[0].starts_with("EVENT")
            && lines[0].contains("LOCATION")
            && lines[0].ends_with("RESOURCES"),
        "{list}"
    );
    assert!(lines.iter().any(|l| l.starts_with("orders.order_placed v1  orders.send_confirmation  durable  0      examples/async-worker/src/main.rs:")), "{list}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("orders.update_stock") && l.ends_with("async_worker::Journal")),
        "{list}"
    );

    let graph = app.run(&["graph"]);
    assert!(graph.starts_with("flowchart LR\n"), "{graph}");
    assert!(
        graph.contains("    e_orders_order_placed[[\"orders.order_placed\"]]\n"),
        "{graph}"
    );
    assert!(
        graph.contains("    h_orders_update_stock[(\"orders.update_stock (durable)\")]\n"),
        "{graph}"
    );
    assert!(
        graph.contains("    e_orders_order_placed --> h_orders_update_stock\n"),
        "{graph}"
    );

    // Every 4th order has no items: the stock handler fails it twice, then dead-letters it.
    app.run(&[
        "place-orders",
        "12",
        "--customers",
        "3",
        "--empty-every",
        "4",
    ]);
    let status = app.run(&["status"]);
    assert!(status.starts_with("log head: position 12\n"), "{status}");
    assert_eq!(app.lag("orders.update_stock"), 12);

    let out = app.run(&[
        "process",
        "--all",
        "--max-runtime",
        "2s",
        "--poll-interval",
        "20ms",
    ]);
    assert!(out.contains("orders.send_confirmation: 12 delivered, 0 failed attempts, 0 dead-lettered, 0 held back"), "{out}");
    assert!(
        out.contains(
            "orders.update_stock: 6 delivered, 6 failed attempts, 3 dead-lettered, 3 held back"
        ),
        "{out}"
    );

    let status = app.run(&["status"]);
    let stock = status
        .lines()
        .find(|l| l.starts_with("orders.update_stock"))
        .unwrap();
    let cols: Vec<_> = stock.split_whitespace().collect();
    assert_eq!(
        &cols[1..8],
        ["orders.order_placed", "12", "0", "0", "3", "3", "-"],
        "{status}"
    );

    // Orders 4, 8 and 12 belong to customers 1, 2 and 0; each holds back that customer's later orders.
    let dead = app.run(&["dead-letters"]);
    let rows: Vec<_> = dead.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{dead}");
    assert!(
        dead.lines().next().unwrap().ends_with("LAST ERROR"),
        "{dead}"
    );
    let first: Vec<_> = rows[0].split_whitespace().collect();
    assert_eq!(
        &first[1..6],
        ["orders.update_stock", "4", "Customer/1", "2", "2"],
        "{dead}"
    );
    assert!(
        rows[0].ends_with("stock service rejected order 4: no items"),
        "{dead}"
    );
    let id = first[0];

    // Dropping the first releases the two orders held behind it.
    assert!(app
        .run(&["drop", id])
        .contains(&format!("dead letter {id} dropped")));
    let out = app.run(&[
        "process",
        "orders.update_stock",
        "--max-runtime",
        "1s",
        "--poll-interval",
        "20ms",
    ]);
    assert!(out.contains("orders.update_stock: 2 delivered"), "{out}");

    // Retrying the others fails again (the orders still have no items) and dead-letters them anew.
    assert!(app
        .run(&["retry", "--all"])
        .starts_with("2 dead letter(s) scheduled for retry"));
    let out = app.run(&[
        "process",
        "orders.update_stock",
        "--max-runtime",
        "1s",
        "--poll-interval",
        "20ms",
    ]);
    assert!(out.contains("2 dead-lettered"), "{out}");
    let bad = app.output(&["retry", "999"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).trim(),
        "error: no dead letter with id 999"
    );

    // Replay delivers a handler's history again, from a position.
    let out = app.run(&["replay", "orders.send_confirmation", "--from", "5"]);
    assert_eq!(out.trim(), "replayed orders.send_confirmation from position 5: 8 delivered, 0 failed attempts, 0 dead-lettered, 0 held back");
    let confirmations = app
        .handled()
        .into_iter()
        .filter(|(h, ..)| h == "orders.send_confirmation")
        .count();
    assert_eq!(confirmations, 12 + 8);

    // Mistakes are refused with every problem at once.
    let out = app.output(&[
        "process",
        "orders.nope",
        "orders.send_confirmation",
        "nope2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no handler is named `orders.nope`")
            && err.contains("no handler is named `nope2`"),
        "{err}"
    );
    assert_eq!(
        app.output(&["process"]).status.code(),
        Some(2),
        "clap usage error"
    );
}

/// Every command that takes a handler name refuses an unknown one on one line, with the valid
/// names, and a non-zero exit (issue 9, item 12).
#[test]
fn unknown_handler_names_are_refused_with_the_valid_ones() {
    let app = App::new("cli-names");
    app.run(&["place-orders", "4", "--empty-every", "2"]);
    for args in [
        &["dead-letters", "--handler", "orders.sned_confirmation"][..],
        &["retry", "--all", "--handler", "orders.sned_confirmation"],
        &["replay", "orders.sned_confirmation"],
        &["process", "orders.sned_confirmation", "--max-runtime", "1s"],
    ] {
        let out = app.output(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let line = err
            .lines()
            .find(|l| l.contains("orders.sned_confirmation"))
            .unwrap_or_else(|| panic!("{args:?}: {err}"));
        assert!(
            line.ends_with(
                "no handler is named `orders.sned_confirmation`; durable handlers: orders.send_confirmation, orders.update_stock"
            ),
            "{args:?}: {err}"
        );
    }
}
