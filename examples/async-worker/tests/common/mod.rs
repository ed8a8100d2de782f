//! Runs the real `async-worker` binary on a database of its own.
#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub struct App {
    pub db: PathBuf,
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
            _dir: TempDir(dir),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_async-worker"));
        cmd.args(args)
            .env("EVENTS_DB", &self.db)
            .env_remove("RUST_LOG")
            .env_remove("EVENTS_DATABASE_URL");
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
        let line = status
            .lines()
            .find(|l| l.starts_with(handler))
            .unwrap_or_else(|| panic!("{status}"));
        line.split_whitespace().nth(3).unwrap().parse().unwrap()
    }
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
