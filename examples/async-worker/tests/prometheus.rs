//! Prometheus itself as the client of a worker's `--metrics-addr` (issue 25): Debian's
//! `prometheus` scrapes a real worker process every second, and its HTTP API
//! (`/api/v1/query`) gives back the lag gauge of a handler whose events wait and the failure
//! counter of a handler that failed. Without `prometheus` on `PATH` the test skips with a
//! note, unless `CI=true`: then it fails (`.ci/run` installs the package).

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http_get, App, Running};

/// Far above what a scrape takes (Prometheus starts in about a second and scrapes every
/// second), so that only a real failure runs into it.
const DEADLINE: Duration = Duration::from_secs(120);

/// The `prometheus` binary, or `None` (after saying why) when the test should skip.
fn prometheus_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|path| path.is_file())
    });
    match on_path {
        Some(path) => Some(path),
        None if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "no `prometheus` on PATH and CI=true: install Debian's `prometheus` package (.ci/run does)"
        ),
        None => {
            eprintln!("skipped: no `prometheus` on PATH (install Debian's `prometheus` package to run this test)");
            None
        }
    }
}

/// A Prometheus server of the test's own, scraping one target every second, with its
/// configuration, data and log in `dir`.
struct Prometheus {
    port: u16,
    log: PathBuf,
    _process: Running,
}

impl Prometheus {
    fn start(binary: &Path, dir: &Path, target: &str) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: async-worker\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let out = File::create(&log).unwrap();
        let process = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Self {
            port,
            log,
            _process: Running(process),
        }
    }

    /// The value of the one series `query` selects now: `Ok(None)` while there is none (not
    /// scraped yet), `Err` when Prometheus does not answer (not started yet) or says it failed.
    fn query(&self, query: &str) -> Result<Option<f64>, String> {
        let body = http_get(self.port, &format!("/api/v1/query?query={}", encode(query)))?;
        let answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if answer["status"] != "success" {
            return Err(format!("the query failed: {body}"));
        }
        let series = answer["data"]["result"]
            .as_array()
            .ok_or_else(|| format!("not a vector: {body}"))?;
        match series.as_slice() {
            [] => Ok(None),
            [one] => {
                let value = one["value"][1]
                    .as_str()
                    .ok_or_else(|| format!("no value: {body}"))?;
                value.parse().map(Some).map_err(|e| format!("{e}: {body}"))
            }
            _ => Err(format!("more than one series: {body}")),
        }
    }

    /// Polls `query` until its series is there and its value passes `wanted` (up to
    /// [`DEADLINE`]); the value. Fails with the last answer and Prometheus's log otherwise.
    fn wait_for(&self, query: &str, what: &str, wanted: impl Fn(f64) -> bool) -> f64 {
        let started = Instant::now();
        loop {
            let last = self.query(query);
            if let Ok(Some(value)) = last {
                if wanted(value) {
                    eprintln!(
                        "{query} = {value} (after {:.1}s)",
                        started.elapsed().as_secs_f64()
                    );
                    return value;
                }
            }
            if started.elapsed() > DEADLINE {
                panic!(
                    "Prometheus never showed {what} within {DEADLINE:?}: `{query}` last gave {last:?}\nits log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Percent-encodes a query string value (everything but the unreserved characters).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_lag_and_the_failures_of_a_real_worker() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let app = App::new("prometheus");
    let before_orders = Instant::now();
    // Two customers; orders 3 and 6 have no items: the stock handler fails each of them twice
    // (`max_attempts = 2`) and dead-letters it, 4 failures in all. No worker runs the
    // confirmation handler, so all 6 orders wait for it.
    app.run(&[
        "place-orders",
        "6",
        "--customers",
        "2",
        "--empty-every",
        "3",
    ]);
    let metrics = format!("127.0.0.1:{}", free_port());
    let _worker = Running(app.spawn(
        &[
            "--metrics-addr",
            &metrics,
            "process",
            "orders.update_stock",
            "--poll-interval",
            "20ms",
        ],
        0,
    ));
    let prometheus = Prometheus::start(&binary, app.db.parent().unwrap(), &metrics);

    prometheus.wait_for(
        r#"up{job="async-worker"}"#,
        "the worker's endpoint up",
        |up| up == 1.0,
    );
    let lag = prometheus.wait_for(
        r#"events_durable_lag_events{handler="orders.send_confirmation"}"#,
        "the confirmation handler's lag",
        |lag| lag > 0.0,
    );
    assert_eq!(lag, 6.0, "every order waits for the confirmation handler");
    let waited = prometheus.wait_for(
        r#"events_durable_lag_seconds{handler="orders.send_confirmation"}"#,
        "how long the oldest order waits",
        |seconds| seconds > 0.0,
    );
    let since_orders = before_orders.elapsed().as_secs_f64();
    assert!(
        waited <= since_orders,
        "a lag of {waited} s, orders placed {since_orders} s ago"
    );
    let failures = prometheus.wait_for(
        r#"events_handler_failures_total{handler="orders.update_stock"}"#,
        "the stock handler's 4 failures",
        |failures| failures >= 4.0,
    );
    assert_eq!(failures, 4.0, "2 orders without items, 2 attempts each");
    let dead = prometheus.wait_for(
        r#"events_durable_dead_letters{handler="orders.update_stock"}"#,
        "the stock handler's 2 dead letters",
        |dead| dead >= 2.0,
    );
    assert_eq!(dead, 2.0);
    // The label selects: the confirmation handler, run by no worker here, failed nothing.
    assert_eq!(
        prometheus.query(r#"events_handler_failures_total{handler="orders.send_confirmation"}"#),
        Ok(Some(0.0))
    );
}
