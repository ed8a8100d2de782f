//! Runs the real `async-worker` binary on a database of its own.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub struct App {
    pub db: PathBuf,
    /// A database URL (`EVENTS_DATABASE_URL`) instead of the SQLite file; the handlers'
    /// journal stays next to `db`.
    pub url: Option<String>,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl App {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("async-worker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            db: dir.join("shop.db"),
            url: None,
            _dir: TempDir(dir),
        }
    }

    /// An application on the database `url` (its journal in a fresh directory).
    pub fn on(name: &str, url: String) -> Self {
        Self {
            url: Some(url),
            ..Self::new(name)
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_async-worker"));
        cmd.args(args)
            .env("EVENTS_DB", &self.db)
            .env_remove("RUST_LOG");
        match &self.url {
            Some(url) => cmd.env("EVENTS_DATABASE_URL", url),
            None => cmd.env_remove("EVENTS_DATABASE_URL"),
        };
        cmd
    }

    /// Runs to completion; panics with its output if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "{args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn spawn(&self, args: &[&str], delay_ms: u32) -> Child {
        self.command(args)
            .env("HANDLER_DELAY_MS", delay_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A worker on every handler for two seconds, polling every 20 ms.
    pub const PROCESS_ALL: [&'static str; 6] = [
        "process",
        "--all",
        "--max-runtime",
        "2s",
        "--poll-interval",
        "20ms",
    ];

    /// Runs one handler's worker for a second, polling every 20 ms; its summary.
    pub fn process_for_a_second(&self, handler: &str) -> String {
        self.run(&[
            "process",
            handler,
            "--max-runtime",
            "1s",
            "--poll-interval",
            "20ms",
        ])
    }

    /// Lines `handler event_id customer order` the handlers wrote.
    pub fn handled(&self) -> Vec<(String, String, u32, u64)> {
        let text =
            std::fs::read_to_string(self.db.with_extension("db.handled")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let f: Vec<_> = l.split(' ').collect();
                assert_eq!(f.len(), 4, "torn line {l:?}");
                (
                    f[0].to_owned(),
                    f[1].to_owned(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )
            })
            .collect()
    }

    /// The LAG column of a handler in `status`.
    pub fn lag(&self, handler: &str) -> u64 {
        let status = self.run(&["status"]);
        status_table(&status)
            .row("HANDLER", handler)
            .unwrap_or_else(|| panic!("{status}"))["LAG"]
            .parse()
            .unwrap()
    }
}

/// The handlers' table of `status` (between the log head and the workers or any orphaned
/// checkpoints).
pub fn status_table(status: &str) -> Table {
    let lines = status.lines().skip(1).take_while(|l| {
        !l.starts_with("workers (")
            && !l.starts_with("orphaned checkpoints")
            && !l.starts_with("timers: ")
    });
    Table::parse(lines, &STATUS_COLUMNS)
}

/// The columns of `status`.
pub const STATUS_COLUMNS: [&str; 10] = [
    "HANDLER",
    "EVENT",
    "CHECKPOINT",
    "LAG",
    "LAG AGE",
    "RETRYING",
    "NEXT RETRY",
    "DEAD",
    "HELD",
    "LEASE",
];

/// The columns of `dead-letters`.
pub const DEAD_LETTER_COLUMNS: [&str; 11] = [
    "ID",
    "HANDLER",
    "STATUS",
    "POSITION",
    "AGGREGATE",
    "ATTEMPTS",
    "HELD",
    "AGE",
    "LAST ATTEMPT",
    "NEXT ATTEMPT",
    "LAST ERROR",
];

/// A table the CLI printed, read by column position: each header's column starts where the
/// header does, and every cell must start exactly there (after a space), which is what an
/// aligned table is.
pub struct Table {
    pub rows: Vec<std::collections::BTreeMap<String, String>>,
}

impl Table {
    /// Parses `lines` (the header first) with exactly these `columns`, checking alignment.
    pub fn parse<'a>(mut lines: impl Iterator<Item = &'a str>, columns: &[&str]) -> Self {
        let header = lines.next().expect("a header line");
        let mut starts = Vec::new();
        let mut from = 0;
        for column in columns {
            let at = from
                + header[from..]
                    .find(column)
                    .unwrap_or_else(|| panic!("no column {column} in {header:?}"));
            starts.push(at);
            from = at + column.len();
        }
        assert_eq!(starts[0], 0, "{header:?}");
        let rows = lines
            .map(|line| {
                let chars: Vec<char> = line.chars().collect();
                let mut row = std::collections::BTreeMap::new();
                for (i, column) in columns.iter().enumerate() {
                    let start = starts[i];
                    let end = starts
                        .get(i + 1)
                        .copied()
                        .unwrap_or(chars.len())
                        .min(chars.len());
                    assert!(start < chars.len(), "row too short for {column}: {line:?}");
                    if start > 0 {
                        assert_eq!(chars[start - 1], ' ', "{column} misaligned in {line:?}");
                    }
                    assert_ne!(chars[start], ' ', "{column} misaligned in {line:?}");
                    let cell: String = chars[start..end].iter().collect();
                    row.insert(column.to_string(), cell.trim_end().to_owned());
                }
                row
            })
            .collect();
        Self { rows }
    }

    /// The first row whose `column` is `value`.
    pub fn row(
        &self,
        column: &str,
        value: &str,
    ) -> Option<&std::collections::BTreeMap<String, String>> {
        self.rows.iter().find(|r| r[column] == value)
    }
}

/// The last line of a process's stderr (after the `store: ...` line).
pub fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// Waits for a child to exit by itself (up to `limit`, far above what it should take); kills it
/// and panics with its output if it does not.
pub fn wait_for_exit(mut child: Child, limit: std::time::Duration, what: &str) -> Output {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {limit:?}, killed\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Stops a worker with SIGTERM and checks that it finished cleanly.
pub fn terminate(child: Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIGTERM is a clean stop: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// After workers were killed mid-stream: every one of `events` events was handled by
/// `handler`, at most `in_flight` of them twice (never more), and each customer's orders
/// arrived in the order they were placed: its first handlings in order, and what was handled
/// again (the events a killed worker had started but not recorded) repeated in order too.
/// Returns (deliveries, duplicates).
pub fn check_after_kill(app: &App, handler: &str, events: u64, in_flight: usize) -> (usize, usize) {
    use std::collections::{BTreeMap, HashMap};
    let handled: Vec<_> = app
        .handled()
        .into_iter()
        .filter(|(h, ..)| h == handler)
        .collect();
    let mut times: HashMap<&str, u32> = HashMap::new();
    for (_, id, ..) in &handled {
        *times.entry(id).or_default() += 1;
    }
    assert_eq!(
        times.len() as u64,
        events,
        "every event handled at least once"
    );
    let duplicates: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.len() <= in_flight && duplicates.iter().all(|(_, n)| **n == 2),
        "only the events in flight at the kill may be handled twice: {duplicates:?}"
    );
    // Per customer: the last order handled for the first time, and for the second time.
    let mut last: BTreeMap<(u32, bool), u64> = BTreeMap::new();
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for (_, id, customer, order) in &handled {
        let again = seen.insert(id, ()).is_some();
        let previous = last.insert((*customer, again), *order).unwrap_or(0);
        let which = if again { "again" } else { "first" };
        assert!(
            *order > previous,
            "customer {customer}: order {order} handled ({which}) after {previous}"
        );
    }
    (handled.len(), duplicates.len())
}

/// Kills a process (a worker, a server) when the test ends, passed or not.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` (already percent-encoded) from 127.0.0.1:`port` with HTTP/1.0 (no chunked
/// body): the body of a 200 response, or why not.
pub fn http_get(port: u16, path: &str) -> Result<String, String> {
    match http(port, "GET", path, &[])? {
        (200, body) => Ok(body),
        (status, body) => Err(format!("not 200: {status}\n{body}")),
    }
}

/// Sends `method path` with `headers` (and no body) to 127.0.0.1:`port` with HTTP/1.0: the
/// status and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}
