//! A second worker on a handler that another worker holds says who holds it, stands by and
//! exits 0 (issue 22: a standby is not a failure), and `status` shows the holder (issue 9,
//! item 8) and both workers.

mod common;

use std::time::{Duration, Instant};

use common::App;

const HANDLER: &str = "orders.send_confirmation";

#[test]
fn a_second_worker_names_the_holder_and_stands_by() {
    let app = App::new("two-workers");
    app.run(&["place-orders", "3"]);
    let mut first = app.spawn(&["process", HANDLER, "--max-runtime", "120s"], 0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let holder = format!("pid {} on {}", first.id(), host.trim());

    let started = Instant::now();
    let line = loop {
        let status = app.run(&["status"]);
        let line = status
            .lines()
            .find(|l| l.starts_with(HANDLER))
            .unwrap()
            .to_owned();
        if !line.ends_with(" -") {
            break line;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{status}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        line.contains(&format!("{holder} (lease expires in ")),
        "{line}"
    );

    let second = app.output(&["process", HANDLER, "--max-runtime", "1s"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr),
    );
    assert_eq!(second.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "{HANDLER}: not delivered by this worker: another worker holds it: {holder} (lease expires in "
        )),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("; this one stood by"),
        "{stdout}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
    first.kill().unwrap();
    first.wait().unwrap();
}
