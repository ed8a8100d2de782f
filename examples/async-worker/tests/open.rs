//! Processes that open a new database file at the same moment all succeed (issue 9, item 10:
//! they died with `database is locked` while switching the new file to WAL).

mod common;

use std::process::Stdio;

use common::App;

#[test]
fn processes_opening_a_new_file_together_all_succeed() {
    for round in 0..10 {
        let app = App::new(&format!("open-{round}"));
        let children: Vec<_> = (0..8)
            .map(|i| {
                let args: &[&str] = if i % 2 == 0 {
                    &["place-orders", "1"]
                } else {
                    // Creates the file as well (`status` would refuse a missing one).
                    &["migrate"]
                };
                app.command(args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(app.run(&["status"]).starts_with("log head: position 4\n"));
    }
}

/// The one-line error of `status` on `db`, which must fail.
fn refusal(app: &App, db: &std::path::Path) -> String {
    let out = app
        .command(&["status"])
        .env("EVENTS_DB", db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

#[test]
fn open_errors_name_the_file_and_say_what_is_wrong() {
    let app = App::new("open-errors");
    let missing = app.db.with_file_name("no-such-dir").join("shop.db");
    assert_eq!(
        refusal(&app, &missing),
        format!(
            "error: cannot open the event store {}: the directory {} does not exist; create it first",
            missing.display(),
            missing.parent().unwrap().display()
        )
    );

    let not_a_db = app.db.with_file_name("notes.txt");
    std::fs::write(
        &not_a_db,
        "these are not the tables you are looking for\n".repeat(200),
    )
    .unwrap();
    assert_eq!(
        refusal(&app, &not_a_db),
        format!(
            "error: cannot open the event store {}: the file exists but is not an SQLite database",
            not_a_db.display()
        )
    );
}
