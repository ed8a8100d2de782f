//! The operator CLI. An application embeds it in its own binary, because its handlers are
//! linked there. The simple case hands over the command line:
//!
//! ```no_run
//! # async fn main_() -> std::process::ExitCode {
//! let bus = events::Bus::builder().build().expect("bus");
//! events::cli::run(&bus, events::cli::StoreSource::url("sqlite://app.db")).await
//! # }
//! ```
//!
//! An application with commands of its own mounts the operator commands beside them, so one
//! `--help` lists them all, and runs the one parsed with [`run_command`]:
//!
//! ```no_run
//! use clap::{Parser, Subcommand};
//!
//! #[derive(Parser)]
//! #[command(version)]
//! struct App {
//!     #[command(flatten)]
//!     store: events::cli::StoreArgs,
//!     #[command(subcommand)]
//!     command: AppCommand,
//! }
//!
//! #[derive(Subcommand)]
//! enum AppCommand {
//!     /// The application's own command.
//!     Import { file: String },
//!     #[command(flatten)]
//!     Events(events::cli::Command),
//! }
//!
//! # async fn main_() -> std::process::ExitCode {
//! let app = App::parse();
//! let bus = events::Bus::builder().build().expect("bus");
//! match app.command {
//!     AppCommand::Import { file } => todo!("import {file}"),
//!     AppCommand::Events(command) => {
//!         let store = app.store.or(events::cli::StoreSource::url("sqlite://app.db"));
//!         events::cli::run_command(&bus, store, command).await
//!     }
//! }
//! # }
//! ```
//!
//! **Which store.** The store the application hands over is the default; the global
//! `--database-url` (or `EVENTS_DATABASE_URL`) points the CLI at another one (`sqlite://PATH`,
//! `sqlite::memory:`, `postgres://...`, see [`store::connect`](crate::store::connect)). Every
//! command that opens a store names it in one line on stderr (`store: sqlite:///abs/app.db`).
//! Given as a URL ([`StoreSource::url`]), a store is opened only by the commands that need
//! one, and only `process`, `migrate` and `relay` create it; `status`, `dead-letters`, `log`,
//! `retry`, `drop`, `replay`, `rename-checkpoint` and `timers` refuse a store that does not
//! exist.
//!
//! **Commands.** `list`, `process <handler>... | --all [--max-runtime 10m]`,
//! `status [--check [--max-lag N] [--max-lag-age 5m] [--max-dead N]]`,
//! `dead-letters [--handler H]`, `retry <id> | --all`, `drop <id>`,
//! `replay <handler> [--from POS] [--discard-failures]`, `graph`,
//! `log [--aggregate Type/id] [--correlation ID] [--name N] [--from P] [--to P] [--limit N]`,
//! `rename-checkpoint <old> <new>`, `timers [--json]`, `timers cancel <id>`,
//! `timers reschedule <id> --at 2026-11-25T12:00:00Z | --in 10m`; with feature `nats` or
//! `redis`: `relay --to URL` and `process --source URL`; with feature `dashboard`: `serve
//! [--listen 127.0.0.1:8080] [--allow-actions] [--base-path P]`, the dashboard in the
//! browser (see `dashboard` and the guide's CLI chapter). Tables keep one line per row: long or
//! multi-line text (errors,
//! payloads) is flattened and cut with `…`; `--json` and `dead-letters --handler H` show it in
//! full. `process` logs its start, each handler's progress (`--progress-every`) and why it
//! stopped; when the application installed no `tracing` subscriber, these go to stderr as
//! plain lines.
//!
//! **Exit codes.** 0: done (or `status --check`: healthy); 1: the command failed (one line on
//! stderr says why and what to do); 2: bad arguments; 3: `status --check` found problems (one
//! line each on stdout).
//!
//! **JSON** (`--json` on `list`, `status`, `dead-letters`, `log`). Field names are stable; times
//! are RFC 3339 in UTC (`2026-11-25T12:00:00.123Z`), absent ones `null`.
//! - `list`: `{"events": [{"name", "version", "handlers": [{"name", "kind", "batch", "order",
//!   "location", "resources": [..]}]}]}`; `kind` is `sync`, `async` or `durable`.
//! - `status`: `{"store", "log_head", "handlers": [{"handler", "event", "checkpoint", "lag",
//!   "oldest_undelivered_at", "lag_age_seconds", "retrying", "next_retry_at", "dead", "held",
//!   "leases": [{"segment", "host", "pid", "expires_at"}]}], "orphaned_checkpoints":
//!   [{"handler", "position"}], "relays": [{"name", "position", "behind"}], "timers":
//!   {"scheduled", "overdue", "oldest_overdue_at",
//!   "next_due_at"}, "problems": [..]}`; `problems` are the lines `--check` prints (dead
//!   letters with the default thresholds when `--check` is not given; with `--max-lag-age`,
//!   timers overdue for longer).
//! - `dead-letters`: `{"store", "failures": [{"id", "handler", "status", "position",
//!   "aggregate", "attempts", "held_behind", "occurred_at", "last_attempt_at",
//!   "next_attempt_at", "last_error"}]}`; `status` is `dead` or `retrying`, `last_error` the
//!   full text.
//! - `log`: `{"store", "events": [{"position", "event_id", "name", "version",
//!   "aggregate_type", "aggregate_id", "sequence", "occurred_at", "correlation_id",
//!   "causation_id", "fields", "payload"}], "more"}`; `more` is `true` when `--limit` cut the
//!   list.
//! - `timers`: `{"store", "timers": [{"id", "due_at", "overdue_seconds", "owner", "key",
//!   "event", "version", "aggregate_type", "aggregate_id", "event_id", "correlation_id",
//!   "causation_id", "created_at", "payload"}]}`, in due order; `overdue_seconds` is 0 for a
//!   timer not due yet.

mod args;
mod catalog_view;
mod commands;
mod dead_letters;
mod feedback;
mod flow;
mod log;
#[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
mod nats;
mod output;
mod process;
#[cfg(feature = "dashboard")]
mod serve;
#[cfg(feature = "prometheus")]
mod serve_metrics;
mod source;
mod status;
mod timers;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::bus::Bus;
use crate::store::StoreError;
use crate::worker::WorkerError;

#[cfg(feature = "dashboard")]
pub use args::ServeArgs;
pub use args::{Command, LogArgs, ProcessArgs, StatusArgs, StoreArgs, TimerAction, TimersArgs};
#[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
pub use args::{NatsSource, RelayArgs};
pub use flow::graph;
#[cfg(feature = "dashboard")]
pub use serve::{dashboard, DashboardOptions};
#[cfg(feature = "prometheus")]
pub use serve_metrics::{serve_metrics, MetricsError};
pub use source::StoreSource;

use args::Cli;
use commands::{execute, Outcome};

/// A CLI command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The worker could not start.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// A command was given something it cannot use.
    #[error("{0}")]
    Usage(String),
    /// `process` delivered nothing for these handlers: another worker held them the whole run.
    #[error("another worker held {0} for the whole run (see above); run one worker per handler, or this one as a standby")]
    HeldElsewhere(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// The broker (NATS, Redis) failed.
    #[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
    #[error(transparent)]
    Nats(#[from] crate::transport::TransportError),
}

/// The exit code of `status --check` when it found problems.
pub const EXIT_UNHEALTHY: u8 = 3;

/// Runs the CLI with the process's arguments, printing to stdout; returns the exit code (see
/// the module documentation).
pub async fn run(bus: &Bus, store: impl Into<StoreSource>) -> ExitCode {
    run_from(bus, store, std::env::args_os()).await
}

/// As [`run`], with the given arguments (the first is the program name).
pub async fn run_from<I, T>(bus: &Bus, store: impl Into<StoreSource>, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run_command(bus, cli.store.or(store), cli.command).await,
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// Runs one parsed command (mounted in the application's own parser, see the module
/// documentation) on `store`, printing to stdout and naming the store on stderr; returns the
/// exit code. When the application installed no `tracing` subscriber, the commands that run
/// handlers log to stderr as plain lines.
pub async fn run_command(bus: &Bus, store: impl Into<StoreSource>, command: Command) -> ExitCode {
    if command.runs_handlers() {
        feedback::log_to_stderr_unless_subscribed();
    }
    // The output is gathered first and printed at the end: holding stdout's lock across the
    // awaits that run handlers would block every handler or logger that prints (a hang).
    let mut out = Vec::new();
    let result = execute(bus, store.into(), command, &mut out, true).await;
    let printed = std::io::stdout().write_all(&out).map_err(CliError::Io);
    match result.and_then(|outcome| printed.map(|()| outcome)) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Unhealthy) => ExitCode::from(EXIT_UNHEALTHY),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the CLI with the given arguments (the first is the program name), writing to `out`
/// (and nothing to stderr). `status --check` finding problems is not an error here: its lines
/// are in `out`.
pub async fn run_with<I, T>(
    bus: &Bus,
    store: impl Into<StoreSource>,
    args: I,
    out: &mut dyn Write,
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| CliError::Usage(e.to_string()))?;
    execute(bus, cli.store.or(store), cli.command, out, false)
        .await
        .map(|_| ())
}
