//! Runs the example binary and checks each flow in its output.

#[test]
fn every_flow_runs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_record-flows"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    for expected in [
        // fan-out, in order: audit (order -1), then by name
        "  tables.record_created -> tables.audit (sync, examples/record-flows/src/main.rs:",
        "  tables.record_created -> webhooks.record_created (async, ",
        // chain + conditional: the lead triggers the automation
        "  automation welcome-lead for record 1 (correlation ",
        "  form contact -> record 1: `tables.record_created`: 3 handler(s) ran, 0 failed, 1 skipped (webhooks.record_created)",
        // async flow with an isolated failure
        "  `tables.record_created`: 4 handler(s) ran, 1 failed\n  handler `webhooks.record_created` failed: webhook rejected record 100: no email",
        "  `tables.record_deleted`: 1 handler(s) ran, 0 failed",
        "search index: [(\"leads\", 1)]",
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
        audit[0].starts_with("  tables.record_created leads record 1 (caused by Some("),
        "{audit:?}"
    );
    assert_eq!(
        audit[1],
        "  tables.record_created tasks record 100 (caused by None)"
    );
}
