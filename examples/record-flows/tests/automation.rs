//! Runs the automation binary: the process manager drives each submission through its record,
//! its automation and its actions in order; the stuck action's deadline fails its run.

#[test]
fn each_run_goes_through_its_actions_in_order_and_a_stuck_one_fails_by_its_deadline() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_automation"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).unwrap();
    let lines_of = |run: &str| -> Vec<&str> {
        out.lines()
            .filter(|l| l.starts_with(&format!("run {run}")) || l.contains(&format!("run {run}:")))
            .collect()
    };
    assert_eq!(
        lines_of("1"),
        [
            "run 1: action 0 `send-welcome-email` executed",
            "run 1: action 1 `add-to-crm` executed",
            "run 1: action 2 `notify-sales` executed",
            "run 1 completed: 3 actions",
        ],
        "{out}"
    );
    assert_eq!(
        lines_of("2"),
        [
            "run 2: action 0 `send-welcome-email` executed",
            "run 2: action 1 `call-slow-crm` started; it never reports",
            "notify owner: run 2: action 1 `call-slow-crm` did not report within 300ms",
            "run 2 failed: action 1 `call-slow-crm` did not report within 300ms",
        ],
        "{out}"
    );
    assert!(out.contains("record rec-1 created from the form"), "{out}");
    assert!(out.contains("timers: 1 fired"), "{out}");
}
