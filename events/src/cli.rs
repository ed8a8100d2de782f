//! The operator CLI. An application embeds it in its own binary, because its handlers are
//! linked there:
//!
//! ```no_run
//! # async fn main_() -> std::process::ExitCode {
//! let bus = events::Bus::builder().build().expect("bus");
//! let store = events::store::SqliteStore::open("app.db").expect("store");
//! events::cli::run(&bus, &store).await
//! # }
//! ```
//!
//! The store the application hands over is the default; the global `--database-url` (or
//! `EVENTS_DATABASE_URL`) points the CLI at another one (`sqlite://PATH`, `sqlite::memory:`,
//! `postgres://...`, see [`store::connect`](crate::store::connect)).
//!
//! Commands: `list`, `process <handler>... | --all [--max-runtime 10m]`, `status`,
//! `dead-letters [--handler H]`, `retry <id> | --all`, `drop <id>`,
//! `replay <handler> [--from POS] [--discard-failures]`, `graph`, `rename-checkpoint <old> <new>`;
//! with feature `nats`: `relay` and `process --source nats://...`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::bus::Bus;
use crate::catalog::catalog;
use crate::catalog::HandlerInfo;
use crate::handler::HandlerKind;
use crate::store::connect;
use crate::store::durable::{DurableStore, FailureStatus, IntoDurableStore, OnReset, Owner};
use crate::store::StoreError;
use crate::worker::{orphaned_checkpoints, unknown_handler, Worker, WorkerError};

/// The events operator CLI.
#[derive(Debug, Parser)]
#[command(
    name = "events",
    about = "Inspect and run the event handlers linked into this program"
)]
struct Cli {
    /// The store to work on instead of the application's own (`sqlite://PATH`,
    /// `sqlite::memory:`, `postgres://...`).
    #[arg(long, global = true, env = "EVENTS_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every event and handler: kind, order, source location, resources.
    List,
    /// Create or upgrade the store's tables (PostgreSQL; SQLite creates its own when it opens).
    Migrate,
    /// Run durable handlers: deliver stored events until stopped (SIGINT/SIGTERM) or the time
    /// limit.
    Process {
        /// Handlers to run (by name).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        handlers: Vec<String>,
        /// Run every durable handler.
        #[arg(long)]
        all: bool,
        /// Exit cleanly after this long (`90s`, `10m`, `1h`), for a supervisor to restart.
        #[arg(long, value_parser = humantime::parse_duration)]
        max_runtime: Option<Duration>,
        /// How often to look for events written by other processes.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
        poll_interval: Duration,
        /// How long a handler's lease outlives a worker that died without releasing it.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
        lease_ttl: Duration,
        /// Take another service's events from NATS JetStream into this store first
        /// (`nats://HOST:PORT`): a durable pull consumer feeds the store, the worker delivers.
        #[cfg(feature = "nats")]
        #[command(flatten)]
        source: NatsSource,
    },
    /// Progress of every durable handler: checkpoint, lag, retries, dead letters, lease.
    Status,
    /// Dead letters, with attempts and the last error.
    DeadLetters {
        /// Only this handler's.
        #[arg(long)]
        handler: Option<String>,
    },
    /// Schedule dead letters for new attempts now.
    Retry {
        /// The dead letter's id (see `dead-letters`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead letter (of `--handler`, if given).
        #[arg(long)]
        all: bool,
        /// With `--all`: only this handler's.
        #[arg(long, requires = "all")]
        handler: Option<String>,
    },
    /// Drop a dead letter: skip its event for good and release the events held behind it.
    Drop {
        /// The dead letter's id.
        id: i64,
    },
    /// Deliver a handler's events again, from a position (default: the beginning). Pending
    /// failures are kept (they go on holding back their aggregates, so order is kept).
    Replay {
        /// The durable handler.
        handler: String,
        /// The first position to deliver again (at most the log head).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Forget the handler's dead letters, retries and held events first (and say how many).
        #[arg(long)]
        discard_failures: bool,
    },
    /// The event flow as a Mermaid diagram: events, handlers, and the events they publish.
    Graph,
    /// Move a checkpoint (and its pending failures) to a new name: after renaming or moving a
    /// durable handler, so that it goes on where it was instead of delivering its history again.
    RenameCheckpoint {
        /// The stored checkpoint's name (see the orphaned checkpoints in `status`).
        old: String,
        /// The durable handler that takes it over; it must not have a checkpoint yet.
        new: String,
    },
    /// Publish the log, in order, to a NATS JetStream stream until stopped (SIGINT/SIGTERM).
    #[cfg(feature = "nats")]
    Relay {
        /// The NATS server.
        #[arg(long, env = "EVENTS_NATS_URL")]
        nats: String,
        /// The stream (created or updated with the relay's settings).
        #[arg(long, default_value = "EVENTS")]
        stream: String,
        /// The first token of the subjects: `<prefix>.<event name>.<aggregate id>`.
        #[arg(long, default_value = "events")]
        subject_prefix: String,
        /// How long the stream drops a second publish of the same event id.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
        duplicate_window: Duration,
        /// Publishes waiting for their acknowledgement at once.
        #[arg(long, default_value_t = 1024)]
        max_in_flight: usize,
        /// How often to look for events written by other processes.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "200ms")]
        poll_interval: Duration,
        /// How long the relay's lease outlives a relay that died without releasing it.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
        lease_ttl: Duration,
    },
}

/// `process --source nats://...`: where another service's events come from.
#[cfg(feature = "nats")]
#[derive(Debug, clap::Args)]
struct NatsSource {
    /// The NATS server to take events from (`nats://HOST:PORT`).
    #[arg(long = "source")]
    url: Option<String>,
    /// The stream the other service relays to.
    #[arg(long, default_value = "EVENTS", requires = "url")]
    stream: String,
    /// This service's durable consumer on it (one per consuming service).
    #[arg(long, default_value = "inbox", requires = "url")]
    consumer: String,
    /// How long a message handed to a consumer that died waits before redelivery.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s", requires = "url")]
    ack_wait: Duration,
}

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
    /// NATS failed.
    #[cfg(feature = "nats")]
    #[error(transparent)]
    Nats(#[from] crate::nats::NatsError),
}

/// Runs the CLI with the process's arguments, printing to stdout; returns the exit code
/// (0: done, 1: the command failed, 2: bad arguments).
pub async fn run(bus: &Bus, store: impl IntoDurableStore) -> ExitCode {
    run_from(bus, store, std::env::args_os()).await
}

/// As [`run`], with the given arguments (the first is the program name): for an application
/// that takes some arguments of its own first.
pub async fn run_from<I, T>(bus: &Bus, store: impl IntoDurableStore, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The output is gathered first and printed at the end: holding stdout's lock across the
    // awaits that run handlers would block every handler or logger that prints (a hang).
    let mut out = Vec::new();
    let result = execute(bus, store.into_durable_store(), cli, &mut out).await;
    let printed = std::io::stdout().write_all(&out).map_err(CliError::Io);
    match result.and(printed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the CLI with the given arguments (the first is the program name), writing to `out`.
pub async fn run_with<I, T>(
    bus: &Bus,
    store: impl IntoDurableStore,
    args: I,
    out: &mut dyn Write,
) -> Result<(), CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| CliError::Usage(e.to_string()))?;
    execute(bus, store.into_durable_store(), cli, out).await
}

async fn execute(
    bus: &Bus,
    store: Arc<dyn DurableStore>,
    cli: Cli,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let store = match &cli.database_url {
        Some(url) => connect(url).await?,
        None => store,
    };
    match cli.command {
        Command::List => write!(out, "{}", list())?,
        Command::Migrate => writeln!(out, "{}", store.migrate().await?)?,
        Command::Process {
            handlers,
            all,
            max_runtime,
            poll_interval,
            lease_ttl,
            #[cfg(feature = "nats")]
            source,
        } => {
            let mut worker = Worker::new(bus, &store)
                .poll_interval(poll_interval)
                .lease_ttl(lease_ttl);
            if !all {
                worker = worker.handlers(handlers);
            }
            if let Some(limit) = max_runtime {
                worker = worker.max_runtime(limit);
            }
            #[cfg(feature = "nats")]
            if let Some(url) = &source.url {
                return nats::process(worker, &store, url, &source, out).await;
            }
            let summary = worker.run().await?;
            write!(out, "{summary}")?;
            if !summary.held_elsewhere.is_empty() {
                let held: Vec<_> = summary.held_elsewhere.keys().map(String::as_str).collect();
                return Err(CliError::HeldElsewhere(held.join(", ")));
            }
        }
        Command::Status => write!(out, "{}", status(store.as_ref()).await?)?,
        Command::DeadLetters { handler } => {
            handler_filter(handler.as_deref())?;
            write!(
                out,
                "{}",
                dead_letters(store.as_ref(), handler.as_deref()).await?
            )?
        }
        Command::Retry {
            id,
            all: _,
            handler,
        } => {
            handler_filter(handler.as_deref())?;
            let n = store.retry_dead_letters(id, handler.as_deref()).await?;
            if n == 0 {
                return Err(CliError::Usage(match id {
                    Some(id) => format!("no dead letter with id {id}"),
                    None => "no dead letters to retry".to_owned(),
                }));
            }
            writeln!(
                out,
                "{n} dead letter(s) scheduled for retry; a running worker picks them up"
            )?;
        }
        Command::Drop { id } => {
            if !store.drop_dead_letter(id).await? {
                return Err(CliError::Usage(format!("no dead letter with id {id}")));
            }
            writeln!(
                out,
                "dead letter {id} dropped; events held behind it are released"
            )?;
        }
        Command::Replay {
            handler,
            from,
            discard_failures,
        } => {
            let failures = if discard_failures {
                OnReset::DiscardFailures
            } else {
                OnReset::KeepFailures
            };
            replay(bus, &store, &handler, from, failures, out).await?
        }
        Command::Graph => write!(out, "{}", graph())?,
        Command::RenameCheckpoint { old, new } => {
            durable_handler(&new)?;
            store.rename_checkpoint(&old, &new).await?;
            writeln!(out, "checkpoint `{old}` is now `{new}`")?;
        }
        #[cfg(feature = "nats")]
        Command::Relay {
            nats,
            stream,
            subject_prefix,
            duplicate_window,
            max_in_flight,
            poll_interval,
            lease_ttl,
        } => {
            let summary = crate::nats::Relay::connect(&store, &nats)
                .await?
                .stream(stream, subject_prefix)
                .duplicate_window(duplicate_window)
                .max_in_flight(max_in_flight)
                .poll_interval(poll_interval)
                .lease_ttl(lease_ttl)
                .run()
                .await?;
            writeln!(out, "{summary}")?;
        }
    }
    Ok(())
}

/// The durable handler of that name, or a one-line error listing the valid names.
fn durable_handler(name: &str) -> Result<&'static HandlerInfo, CliError> {
    match catalog().handler(name) {
        Some(h) if h.kind() == HandlerKind::Durable => Ok(h),
        Some(h) => Err(CliError::Usage(format!(
            "handler `{name}` is {}, not durable: it has no checkpoint or dead letters",
            h.kind().as_str()
        ))),
        None => Err(CliError::Usage(unknown_handler(name))),
    }
}

/// Checks an optional `--handler` filter.
fn handler_filter(name: Option<&str>) -> Result<(), CliError> {
    name.map_or(Ok(()), |n| durable_handler(n).map(|_| ()))
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    };
    line(&mut out, &mut header.iter().copied());
    for row in &rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}

fn list() -> String {
    let catalog = catalog();
    let mut rows = Vec::new();
    for event in catalog.events() {
        let handlers = catalog.handlers_of(event);
        if handlers.is_empty() {
            rows.push(vec![
                format!("{} v{}", event.name(), event.version()),
                "-".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for h in handlers {
            rows.push(vec![
                format!("{} v{}", event.name(), event.version()),
                h.name().to_owned(),
                if h.is_batch() {
                    "durable batch".to_owned()
                } else {
                    h.kind().as_str().to_owned()
                },
                h.order().to_string(),
                h.location().to_string(),
                h.resources().collect::<Vec<_>>().join(", "),
            ]);
        }
    }
    table(
        &["EVENT", "HANDLER", "KIND", "ORDER", "LOCATION", "RESOURCES"],
        rows,
    )
}

async fn status(store: &dyn DurableStore) -> Result<String, StoreError> {
    let head = store.log_head().await?;
    let mut rows = Vec::new();
    for h in catalog()
        .handlers()
        .iter()
        .filter(|h| h.kind() == HandlerKind::Durable)
    {
        let s = store.status(h.name(), h.event_name()).await?;
        let lease = s
            .leases
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            s.handler,
            h.event_name().to_owned(),
            s.checkpoint.to_string(),
            s.lag.to_string(),
            s.retrying.to_string(),
            s.dead.to_string(),
            s.held.to_string(),
            if lease.is_empty() { "-".into() } else { lease },
        ]);
    }
    let mut out = format!("log head: position {head}\n");
    let orphans = orphaned_checkpoints(store).await?;
    out.push_str(&table(
        &[
            "HANDLER",
            "EVENT",
            "CHECKPOINT",
            "LAG",
            "RETRYING",
            "DEAD",
            "HELD",
            "LEASE",
        ],
        rows,
    ));
    if !orphans.is_empty() {
        let positions: std::collections::BTreeMap<_, _> = store
            .checkpoints()
            .await?
            .into_iter()
            .map(|c| (c.handler, c.position))
            .collect();
        out.push_str("orphaned checkpoints (no durable handler of this program has their name; a renamed handler starts over unless you run `rename-checkpoint OLD NEW`):\n");
        for name in orphans {
            let position = positions.get(&name).copied().unwrap_or_default();
            let _ = writeln!(out, "  {name} at position {position}");
        }
    }
    Ok(out)
}

async fn dead_letters(
    store: &dyn DurableStore,
    handler: Option<&str>,
) -> Result<String, StoreError> {
    let failures = store.failures(handler).await?;
    let rows = failures
        .iter()
        .filter(|f| f.status == FailureStatus::Dead)
        .map(|f| {
            let held = failures
                .iter()
                .filter(|g| {
                    g.handler == f.handler && g.aggregate == f.aggregate && g.position > f.position
                })
                .count();
            vec![
                f.id.to_string(),
                f.handler.clone(),
                f.position.to_string(),
                f.aggregate.clone(),
                f.attempts.to_string(),
                held.to_string(),
                f.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect::<Vec<_>>();
    if rows.is_empty() {
        return Ok("no dead letters\n".to_owned());
    }
    Ok(table(
        &[
            "ID",
            "HANDLER",
            "POSITION",
            "AGGREGATE",
            "ATTEMPTS",
            "HELD",
            "LAST ERROR",
        ],
        rows,
    ))
}

async fn replay(
    bus: &Bus,
    store: &Arc<dyn DurableStore>,
    handler: &str,
    from: u64,
    failures: OnReset,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let info = durable_handler(handler)?;
    let head = store.log_head().await?;
    if from > head {
        return Err(StoreError::PastHead {
            position: from,
            head,
        }
        .into());
    }
    let owner = Owner::current();
    let discarded = store
        .reset_handler(handler, from.saturating_sub(1), failures, &owner)
        .await?;
    if failures == OnReset::DiscardFailures {
        writeln!(
            out,
            "discarded {} dead letter(s), {} retrying and {} held event(s) of {handler}",
            discarded.dead, discarded.retrying, discarded.held
        )?;
    }
    let total = store.status(handler, info.event_name()).await?.lag;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("replaying {handler}"));
    let worker = Worker::new(bus, store)
        .owner(owner)
        .handlers([handler])
        .drain();
    tokio::pin!(worker);
    let summary = loop {
        tokio::select! {
            done = &mut worker => break done?,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let lag = store.status(handler, info.event_name()).await?.lag;
                bar.set_position(total.saturating_sub(lag));
            }
        }
    };
    bar.finish_and_clear();
    if let Some(lease) = summary.held_elsewhere.get(handler) {
        return Err(CliError::Usage(format!(
            "the checkpoint of `{handler}` was reset, and another worker took the handler over before this replay could start: {lease}; that worker delivers the replay"
        )));
    }
    let s = summary.handlers.get(handler).copied().unwrap_or_default();
    writeln!(
        out,
        "replayed {handler} from position {from}: {} delivered, {} failed attempts, {} dead-lettered, {} held back",
        s.delivered, s.failed, s.dead_lettered, s.held
    )?;
    Ok(())
}

/// The event flow as a Mermaid flowchart.
pub fn graph() -> String {
    let catalog = catalog();
    let id = |prefix: &str, name: &str| {
        let clean: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("{prefix}_{clean}")
    };
    let mut out = String::from("flowchart LR\n");
    for event in catalog.events() {
        let _ = writeln!(out, "    {}[[\"{}\"]]", id("e", event.name()), event.name());
    }
    for h in catalog.handlers() {
        let shape = match h.kind() {
            HandlerKind::Durable => format!("[(\"{} (durable)\")]", h.name()),
            kind => format!("(\"{} ({})\")", h.name(), kind.as_str()),
        };
        let _ = writeln!(out, "    {}{shape}", id("h", h.name()));
        let _ = writeln!(
            out,
            "    {} --> {}",
            id("e", h.event_name()),
            id("h", h.name())
        );
        for published in h.publishes() {
            let _ = writeln!(out, "    {} -.-> {}", id("h", h.name()), id("e", published));
        }
    }
    out
}

/// `process --source nats://...`.
#[cfg(feature = "nats")]
mod nats {
    use std::io::Write;
    use std::sync::Arc;

    use tokio::sync::watch;

    use super::{CliError, NatsSource};
    use crate::nats::Inbox;
    use crate::store::durable::DurableStore;
    use crate::worker::{shutdown_signal, Worker};

    /// Runs the inbox and the worker side by side until a signal or the worker's time limit;
    /// whichever ends first stops the other.
    pub(super) async fn process(
        worker: Worker,
        store: &Arc<dyn DurableStore>,
        url: &str,
        source: &NatsSource,
        out: &mut dyn Write,
    ) -> Result<(), CliError> {
        let inbox = Inbox::connect(store, url)
            .await?
            .source(source.stream.as_str(), source.consumer.as_str())
            .ack_wait(source.ack_wait);
        let (stop, stopped) = watch::channel(false);
        let until = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let worker = worker.run_until(until(stopped.clone()));
        let inbox = inbox.run_until(until(stopped));
        let signal = shutdown_signal();
        tokio::pin!(worker, inbox, signal);
        let (summary, taken) = tokio::select! {
            () = &mut signal => {
                let _ = stop.send(true);
                (worker.await, inbox.await)
            }
            summary = &mut worker => {
                let _ = stop.send(true);
                (summary, inbox.await)
            }
            taken = &mut inbox => {
                let _ = stop.send(true);
                (worker.await, taken)
            }
        };
        let (summary, taken) = (summary?, taken?);
        writeln!(out, "{taken}")?;
        write!(out, "{summary}")?;
        if !summary.held_elsewhere.is_empty() {
            let held: Vec<_> = summary.held_elsewhere.keys().map(String::as_str).collect();
            return Err(CliError::HeldElsewhere(held.join(", ")));
        }
        Ok(())
    }
}
