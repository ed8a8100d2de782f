//! A worker whose handlers print to stdout, and whose logs go to stdout, still stops by itself
//! (issue 9, item 1: the CLI held the stdout lock across the await that ran the handlers).

mod common;

use std::time::Duration;

use common::{wait_for_exit, App};

#[test]
fn process_with_printing_handlers_and_stdout_logs_exits_at_max_runtime() {
    for threads in ["0", "2"] {
        let app = App::new(&format!("stdout-{threads}"));
        app.run(&["place-orders", "20", "--customers", "4"]);
        let child = app
            .command(&App::PROCESS_ALL)
            .env("WORKER_THREADS", threads)
            .env("PRINT_DELIVERIES", "1")
            .env("LOG_STDOUT", "1")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_for_exit(child, Duration::from_secs(60), "process --max-runtime 2s");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains("orders.send_confirmation: order 1 handled"),
            "{stdout}"
        );
        assert!(stdout.contains("maximum run time reached"), "{stdout}");
        assert!(
            stdout.contains("orders.send_confirmation: 20 delivered"),
            "{stdout}"
        );
    }
}
