//! Runs the example binary and checks each flow in its output.

fn run() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_record-flows"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The lines after `heading` (its `nth` occurrence), up to the next line that is not indented.
fn section<'a>(out: &'a str, heading: &str, nth: usize) -> Vec<&'a str> {
    let mut lines = out.lines();
    for _ in 0..=nth {
        lines.find(|l| *l == heading).expect(heading);
    }
    lines.take_while(|l| l.starts_with("  ")).collect()
}

#[test]
fn every_flow_runs() {
    let out = run();
    for expected in [
        // fan-out, in order: audit (order -1), then by name
        "  tables.record_created -> tables.audit (sync, examples/record-flows/src/main.rs:",
        "  tables.record_created -> webhooks.record_created (async, ",
        // chain + conditional: the lead triggers the automation
        "  automation welcome-lead for record 1 (correlation ",
        "  form contact -> record 1\n",
        // the chained record's report is part of the form's: its async webhook was skipped
        "  follow-up `tables.record_created`: 3 handlers ran, 0 failed, 1 skipped (webhooks.record_created: async, not run by `publish`; use `dispatch(..).await`)",
        // async flow with an isolated failure
        "  `tables.record_created`: 4 handlers ran, 1 failed\n  handler `webhooks.record_created` failed: webhook rejected record 100: no email",
        "  `tables.record_deleted`: 1 handler ran, 0 failed",
        "search index: leads/1\n",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // the chained record's audit line names its cause; the direct one has none
    let audit: Vec<_> = out
        .lines()
        .skip_while(|l| *l != "audit log:")
        .skip(1)
        .take(2)
        .collect();
    assert!(
        audit[0].starts_with("  tables.record_created leads record 1 (caused by event 0"),
        "{audit:?}"
    );
    assert_eq!(
        audit[1],
        "  tables.record_created tasks record 100 (published directly)"
    );
}

#[test]
fn the_chain_prints_as_one_trace() {
    let out = run();
    let trace = section(
        &out,
        "trace of that chain (one trace: each follow-up is published inside its handler's span):",
        0,
    );
    // Ids are shortened to their last 8 digits; the tree is the spans' parent chain.
    let shape: Vec<String> = trace
        .iter()
        .map(|l| match l.find(" (message ..") {
            Some(i) => l[..i].to_owned(),
            None => l.to_string(),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "  publish forms.form_submitted",
            "    process forms.form_submitted in forms.create_record",
            "      publish tables.record_created",
            "        process tables.record_created in tables.audit",
            "        process tables.record_created in automations.new_lead",
            "          publish automations.triggered",
            "            process automations.triggered in automations.run",
            "        process tables.record_created in tables.index_record",
        ],
        "{out}"
    );
    // The root names the conversation; each follow-up names its cause, the message above it.
    let id = |line: &str, label: &str| {
        let at = line
            .find(label)
            .unwrap_or_else(|| panic!("{label} in {line}"))
            + label.len();
        line[at..at + 10].to_owned()
    };
    let form = id(trace[0], "(message ");
    assert_eq!(id(trace[0], "conversation "), form, "{}", trace[0]);
    assert_eq!(id(trace[2], "caused by "), form, "{}", trace[2]);
    assert_eq!(id(trace[5], "caused by "), id(trace[2], "(message "));
}

#[test]
fn the_durable_path_retries_dead_letters_and_holds_back() {
    let out = run();
    assert!(out.contains(
        "  tables.record_updated -> webhooks.record_updated (durable, examples/record-flows/src/durable.rs:"
    ));

    // The event log: seven envelopes, the first one a V1 row.
    let log = section(
        &out,
        "event log (SQLite; position 1 is a V1 row from the previous release):",
        0,
    );
    assert_eq!(log.len(), 14, "{log:?}");
    assert_eq!(
        log[0],
        r#"  1 tables.record_updated v1 Record/1 {"field":"email","record":1,"value":"ada@example.com"}"#
    );
    assert!(log[1].starts_with("    event id ") && log[1].contains(", occurred at 20"));
    assert_eq!(
        log[12],
        r#"  7 tables.record_updated v2 Record/1 {"changes":[["status","customer"]],"record":1}"#
    );

    // First run: one batch for search; the webhook gets the V1 row upcast, retries the two bad
    // updates three times each, and holds back the later update of each of their records.
    let first = section(&out, "worker, first run:", 0);
    for expected in [
        "  search: reindexed records 1, 2, 3, 2, 4, 4, 1 in one call",
        "  webhook: record 1 email=ada@example.com accepted (attempt 1)",
        "  webhook: record 3 email=grace@example.com accepted (attempt 1)",
        "  webhook: record 1 status=customer accepted (attempt 1)",
        "  webhook: CRM rejected record 2: unknown field `phone` (attempt 3)",
        "  webhook: CRM rejected record 4: invalid email `not-an-email` (attempt 3)",
        "  search.reindex_records: 7 delivered, 0 failed attempts, 0 dead-lettered, 0 held back",
        "  webhooks.record_updated: 3 delivered, 6 failed attempts, 2 dead-lettered, 2 held back",
    ] {
        assert!(first.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(
        first.len(),
        12,
        "no 4th attempt, no held update delivered: {first:?}"
    );

    let dead = section(
        &out,
        "dead letters (each holds back the later updates of its record):",
        0,
    );
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert!(dead[0].ends_with(
        " position 2 Record/2, 3 attempts: CRM rejected record 2: unknown field `phone`"
    ));
    assert_eq!(dead[1], "    held position 4 Record/2");
    assert!(dead[2].ends_with(
        " position 5 Record/4, 3 attempts: CRM rejected record 4: invalid email `not-an-email`"
    ));
    assert_eq!(dead[3], "    held position 6 Record/4");

    // After the retry and the drop: record 2 in order, then its held update; record 4's held one.
    let second = section(&out, "worker, second run:", 0);
    let at = |line: &str| second.iter().position(|l| *l == line).expect(line);
    assert!(
        at("  webhook: record 2 phone=555-0100 accepted (attempt 4)")
            < at("  webhook: record 2 email=bob@example.com accepted (attempt 1)")
    );
    at("  webhook: record 4 name=Spam accepted (attempt 1)");
    at("  webhooks.record_updated: 3 delivered, 0 failed attempts, 0 dead-lettered, 0 held back");
    assert_eq!(second.len(), 5, "{second:?}");

    // The CLI's status, before and after: checkpoint, lag, lag age, retrying, next retry,
    // dead, held, lease.
    let webhook_row = |nth| {
        let status = section(&out, "status:", nth);
        assert_eq!(status[0], "  log head: position 7");
        let row = status
            .iter()
            .find(|l| l.starts_with("  webhooks."))
            .unwrap();
        row.split_whitespace().skip(2).collect::<Vec<_>>()
    };
    assert_eq!(webhook_row(0), ["7", "0", "-", "0", "-", "2", "2", "-"]);
    assert_eq!(webhook_row(1), ["7", "0", "-", "0", "-", "0", "0", "-"]);

    let graph = section(&out, "graph (Mermaid):", 0);
    for expected in [
        "  flowchart LR",
        r#"      h_webhooks_record_updated[("webhooks.record_updated (durable)")]"#,
        "      e_tables_record_updated --> h_webhooks_record_updated",
        "      h_forms_create_record -.-> e_tables_record_created",
    ] {
        assert!(
            graph.contains(&expected),
            "missing {expected:?} in {graph:?}"
        );
    }
}
