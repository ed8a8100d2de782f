//! The operator CLI, run as the real binary: list, process, status, dead-letters, retry, drop,
//! replay, graph.

mod common;

use common::{last_line, status_table, App, Table, DEAD_LETTER_COLUMNS};

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

    let out = app.run(&App::PROCESS_ALL);
    assert!(out.contains("orders.send_confirmation: 12 delivered, 0 failed attempts, 0 dead-lettered, 0 held back"), "{out}");
    assert!(
        out.contains(
            "orders.update_stock: 6 delivered, 6 failed attempts, 3 dead-lettered, 3 held back"
        ),
        "{out}"
    );

    let status = app.run(&["status"]);
    let table = status_table(&status);
    let stock = table.row("HANDLER", "orders.update_stock").unwrap();
    let cols: Vec<_> = [
        "EVENT",
        "CHECKPOINT",
        "LAG",
        "LAG AGE",
        "RETRYING",
        "DEAD",
        "HELD",
        "LEASE",
    ]
    .iter()
    .map(|c| stock[*c].as_str())
    .collect();
    assert_eq!(
        cols,
        ["orders.order_placed", "12", "0", "-", "0", "3", "3", "-"],
        "{status}"
    );

    // Orders 4, 8 and 12 belong to customers 1, 2 and 0; each holds back that customer's later orders.
    let dead = app.run(&["dead-letters"]);
    let table = Table::parse(dead.lines(), &DEAD_LETTER_COLUMNS);
    assert_eq!(table.rows.len(), 3, "{dead}");
    let first = &table.rows[0];
    let cols: Vec<_> = [
        "HANDLER",
        "STATUS",
        "POSITION",
        "AGGREGATE",
        "ATTEMPTS",
        "HELD",
        "NEXT ATTEMPT",
    ]
    .iter()
    .map(|c| first[*c].as_str())
    .collect();
    assert_eq!(
        cols,
        [
            "orders.update_stock",
            "dead",
            "4",
            "Customer/1",
            "2",
            "2",
            "-"
        ],
        "{dead}"
    );
    assert!(
        first["LAST ERROR"].starts_with("stock service rejected order 4: no items request: POST"),
        "{dead}"
    );
    let id = first["ID"].clone();
    let id = id.as_str();

    // Dropping the first releases the two orders held behind it.
    assert!(app
        .run(&["drop", id])
        .contains(&format!("dead letter {id} dropped")));
    let out = app.process_for_a_second("orders.update_stock");
    assert!(out.contains("orders.update_stock: 2 delivered"), "{out}");

    // Retrying the others fails again (the orders still have no items) and dead-letters them anew.
    assert!(app
        .run(&["retry", "--all"])
        .starts_with("2 dead letters scheduled for retry"));
    let out = app.process_for_a_second("orders.update_stock");
    assert!(out.contains("2 dead-lettered"), "{out}");
    let bad = app.output(&["retry", "999"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(last_line(&bad.stderr), "error: no dead letter with id 999");

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
                "no handler is named `orders.sned_confirmation`; durable handlers: orders.send_confirmation, orders.update_stock (a handler in another crate runs only once the binary links it: add `events::link!(that_crate);`)"
            ),
            "{args:?}: {err}"
        );
        // One line, as every other error (`process` said it over two), after the line that
        // says which store was opened.
        let lines: Vec<_> = err.lines().filter(|l| !l.starts_with("store: ")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {err}");
    }
}

/// The only dead letter is order 4's, holding back two later orders of customer 0.
fn dead_letter_4_holds_two(app: &App) {
    let dead = app.run(&["dead-letters"]);
    let table = Table::parse(dead.lines(), &DEAD_LETTER_COLUMNS);
    assert_eq!(table.rows.len(), 1, "{dead}");
    let row = &table.rows[0];
    let cols: Vec<_> = ["HANDLER", "POSITION", "AGGREGATE", "ATTEMPTS", "HELD"]
        .iter()
        .map(|c| row[*c].as_str())
        .collect();
    assert_eq!(
        cols,
        ["orders.update_stock", "4", "Customer/0", "2", "2"],
        "{dead}"
    );
}

/// `replay` never skips, forgets or reorders (issue 9, item 5): `--from` past the head is an
/// error, pending failures survive a replay unless `--discard-failures` (which says what it
/// discarded), and a replay says so when another worker holds the handler.
#[test]
fn replay_keeps_failures_and_order_and_refuses_what_it_cannot_do() {
    let app = App::new("cli-replay");
    // Orders 4 and 8 have no items; both belong to customer 0, like orders 2 and 6.
    app.run(&[
        "place-orders",
        "8",
        "--customers",
        "2",
        "--empty-every",
        "4",
    ]);
    let stock = |app: &App| -> Vec<u64> {
        app.handled()
            .into_iter()
            .filter(|(h, ..)| h == "orders.update_stock")
            .map(|(.., order)| order)
            .collect()
    };

    // Past the head: refused, and the checkpoint does not move past events never delivered.
    let out = app.output(&["replay", "orders.update_stock", "--from", "12"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_line(&out.stderr),
        "error: position 12 is past the log head (8); give a position up to 8"
    );
    assert_eq!(app.lag("orders.update_stock"), 8);

    app.process_for_a_second("orders.update_stock");
    assert_eq!(stock(&app), [1, 2, 3, 5, 7]);
    dead_letter_4_holds_two(&app);

    // Replaying from 5 delivers 5 and 7 again; 6 and 8 stay held behind the dead letter at 4.
    let out = app.run(&["replay", "orders.update_stock", "--from", "5"]);
    assert!(
        out.starts_with("replayed orders.update_stock from position 5: 2 delivered"),
        "{out}"
    );
    assert_eq!(stock(&app), [1, 2, 3, 5, 7, 5, 7]);
    dead_letter_4_holds_two(&app);

    // Replaying from 1: customer 0's orders before the dead letter come again, in order; the
    // ones after it still wait.
    app.run(&["replay", "orders.update_stock"]);
    let again = &stock(&app)[7..];
    let customer = |c: u64| {
        again
            .iter()
            .copied()
            .filter(|o| o % 2 == c)
            .collect::<Vec<_>>()
    };
    assert_eq!((customer(0), customer(1)), (vec![2], vec![1, 3, 5, 7]));

    // Told to, a replay forgets the failures and says which.
    let out = app.run(&[
        "replay",
        "orders.update_stock",
        "--from",
        "6",
        "--discard-failures",
    ]);
    assert!(
        out.starts_with(
            "discarded 1 dead letter, 0 retrying and 2 held events of orders.update_stock\n"
        ),
        "{out}"
    );
    assert_eq!(
        stock(&app)[12..],
        [6, 7],
        "order 8 has no items: dead again"
    );

    // Another worker holds the handler: the replay says who, and changes nothing.
    let mut worker = app.spawn(
        &[
            "process",
            "orders.send_confirmation",
            "--max-runtime",
            "60s",
        ],
        0,
    );
    while app.lag("orders.send_confirmation") > 0 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = app.output(&["replay", "orders.send_confirmation"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "`orders.send_confirmation` is being delivered by another worker: pid {}",
            worker.id()
        )),
        "{err}"
    );
    assert_eq!(app.lag("orders.send_confirmation"), 0);
    worker.kill().unwrap();
    worker.wait().unwrap();
}

/// A checkpoint left under a name no handler has any more is reported (status, worker log) and
/// can be moved to the handler's new name (issue 9, item 3).
#[test]
fn orphaned_checkpoints_are_reported_and_can_be_renamed() {
    let app = App::new("cli-orphans");
    app.run(&["place-orders", "5"]);
    app.process_for_a_second("orders.send_confirmation");
    // The handler used to be called `orders.confirmation_v0`: its checkpoint has that name.
    rusqlite::Connection::open(&app.db)
        .unwrap()
        .execute(
            "UPDATE events_checkpoints SET handler = 'orders.confirmation_v0' WHERE handler = 'orders.send_confirmation'",
            [],
        )
        .unwrap();

    let status = app.run(&["status"]);
    assert!(
        status.contains("orphaned checkpoints (no durable handler of this program has their name; a renamed handler starts over unless you run `rename-checkpoint OLD NEW`):\n  orders.confirmation_v0 at position 5\n"),
        "{status}"
    );
    assert_eq!(app.lag("orders.send_confirmation"), 5);
    let worker = app.output(&["process", "orders.update_stock", "--max-runtime", "1s"]);
    let log = String::from_utf8_lossy(&worker.stderr);
    assert!(
        log.contains("orphaned checkpoint: no durable handler of this program is named `orders.confirmation_v0`"),
        "{log}"
    );

    for (new, refusal) in [
        (
            "orders.update_stock",
            "error: a checkpoint named `orders.update_stock` already exists; reset or rename it first",
        ),
        (
            "orders.sned_confirmation",
            "error: no handler is named `orders.sned_confirmation`; durable handlers: orders.send_confirmation, orders.update_stock (a handler in another crate runs only once the binary links it: add `events::link!(that_crate);`)",
        ),
    ] {
        let out = app.output(&["rename-checkpoint", "orders.confirmation_v0", new]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(last_line(&out.stderr), refusal);
    }
    assert_eq!(
        app.run(&[
            "rename-checkpoint",
            "orders.confirmation_v0",
            "orders.send_confirmation"
        ])
        .trim(),
        "checkpoint `orders.confirmation_v0` is now `orders.send_confirmation`"
    );
    let status = app.run(&["status"]);
    assert!(!status.contains("orphaned"), "{status}");
    assert_eq!(app.lag("orders.send_confirmation"), 0);
}

/// `--database-url` and `EVENTS_DATABASE_URL` point the CLI at another store than the
/// application's own.
#[test]
fn the_database_url_picks_the_store() {
    let app = App::new("cli-url");
    let other = app.db.with_file_name("other.db");
    let placed = app
        .command(&["place-orders", "3"])
        .env("EVENTS_DB", &other)
        .output()
        .unwrap();
    assert!(placed.status.success());
    let url = format!("sqlite://{}", other.display());
    app.run(&["migrate"]);
    assert!(app.run(&["status"]).starts_with("log head: position 0\n"));
    assert!(app
        .run(&["status", "--database-url", &url])
        .starts_with("log head: position 3\n"));
    let out = app
        .command(&["status"])
        .env("EVENTS_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("log head: position 3\n"));
    let out = app.output(&["status", "--database-url", "mysql://db/shop"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: cannot open the event store mysql://db/shop: unknown backend `mysql`; use sqlite://PATH, sqlite::memory: or postgres://..."
    );
}
