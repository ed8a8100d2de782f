//! The command line: the global store option and the commands, as clap types an application
//! can mount beside its own commands.

use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

use crate::sink::TimerId;

/// The standalone CLI: the global options and one command (what [`run`](super::run) parses).
#[derive(Debug, Parser)]
#[command(
    name = "events",
    version,
    about = "Inspect and run the event handlers linked into this program"
)]
pub(super) struct Cli {
    #[command(flatten)]
    pub(super) store: StoreArgs,
    #[command(subcommand)]
    pub(super) command: Command,
}

/// The global `--database-url` (or `EVENTS_DATABASE_URL`): flatten it into the application's
/// own top-level arguments when it mounts [`Command`] beside its commands.
#[derive(Clone, Debug, Default, Args)]
pub struct StoreArgs {
    /// The store to work on instead of the application's own (`sqlite://PATH`,
    /// `sqlite::memory:`, `postgres://...`).
    #[arg(long, global = true, env = "EVENTS_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// The operator commands. Mount them beside an application's own commands with
/// `#[command(flatten)] Events(events::cli::Command)` in its `Subcommand` enum, and run the
/// one parsed with [`run_command`](super::run_command).
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Every event and handler: kind, order, source location, resources.
    List {
        /// Print JSON (see the `cli` module documentation for the fields).
        #[arg(long)]
        json: bool,
    },
    /// Create or upgrade the store's tables (PostgreSQL; SQLite creates its own when it opens).
    Migrate,
    /// Run durable handlers: deliver stored events until stopped (SIGINT/SIGTERM) or the time
    /// limit.
    Process(ProcessArgs),
    /// Progress of every durable handler: checkpoint, lag (events and age), retries, dead
    /// letters, lease; with `--check`, a health check for monitors.
    Status(StatusArgs),
    /// Dead letters and scheduled retries: attempts, age, next attempt, the last error; with
    /// `--handler`, one handler's in detail with the full error text.
    DeadLetters {
        /// Only this handler's, in detail.
        #[arg(long)]
        handler: Option<String>,
        /// Print JSON (see the `cli` module documentation for the fields).
        #[arg(long)]
        json: bool,
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
    /// Stored events, filtered by aggregate, correlation (a whole chain, in causal order),
    /// name and position range.
    Log(LogArgs),
    /// Move a checkpoint (and its pending failures) to a new name: after renaming or moving a
    /// durable handler, so that it goes on where it was instead of delivering its history again.
    RenameCheckpoint {
        /// The stored checkpoint's name (see the orphaned checkpoints in `status`).
        old: String,
        /// The durable handler that takes it over; it must not have a checkpoint yet.
        new: String,
    },
    /// Durable timers: due time, how overdue, owner, key, the event that fires; `timers
    /// cancel <id>`, `timers reschedule <id> --at TIME | --in DURATION`.
    Timers(TimersArgs),
    /// Serve the operator dashboard in the browser (overview, dead letters with retry and
    /// drop, the event log, the event flow) until stopped (SIGINT/SIGTERM).
    #[cfg(feature = "dashboard")]
    Serve(ServeArgs),
    /// Publish the log, in order, to a broker (`--to nats://..|redis://..|amqp://..`) until stopped
    /// (SIGINT/SIGTERM).
    #[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
    Relay(RelayArgs),
}

/// `timers`: list them, or cancel or re-schedule one.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TimersArgs {
    /// Print JSON (see the `cli` module documentation for the fields).
    #[arg(long)]
    pub json: bool,
    /// Cancel or re-schedule one timer (without: list them, in due order).
    #[command(subcommand)]
    pub action: Option<TimerAction>,
}

/// What to do with one timer.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum TimerAction {
    /// Delete the timer: it will not fire.
    Cancel {
        /// The timer's id (see `timers`).
        id: TimerId,
    },
    /// Move the timer to another due time.
    Reschedule {
        /// The timer's id (see `timers`).
        id: TimerId,
        /// The new due time, RFC 3339 in UTC (`2026-11-25T12:00:00Z`).
        #[arg(long, value_parser = humantime::parse_rfc3339_weak, required_unless_present = "in", conflicts_with = "in")]
        at: Option<SystemTime>,
        /// The new due time from now (`90s`, `10m`, `1h`).
        #[arg(long = "in", value_parser = humantime::parse_duration)]
        r#in: Option<Duration>,
    },
}

impl Command {
    /// Whether the command may create the store when it does not exist (`process`,
    /// `migrate`, `relay`); the others only work on an existing one.
    pub(super) fn creates_store(&self) -> bool {
        match self {
            Command::Process(_) | Command::Migrate => true,
            #[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
            Command::Relay(_) => true,
            _ => false,
        }
    }

    /// Whether the command needs a store at all (`list` and `graph` read the catalog only).
    pub(super) fn needs_store(&self) -> bool {
        !matches!(self, Command::List { .. } | Command::Graph)
    }

    /// Whether the command runs handlers for a while (and so should say what it does).
    pub(super) fn runs_handlers(&self) -> bool {
        match self {
            Command::Process(_) | Command::Replay { .. } => true,
            #[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
            Command::Relay(_) => true,
            #[cfg(feature = "dashboard")]
            Command::Serve(_) => true,
            _ => false,
        }
    }
}

/// `process`: which handlers, for how long.
#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Handlers to run (by name).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub handlers: Vec<String>,
    /// Run every durable handler.
    #[arg(long)]
    pub all: bool,
    /// Exit cleanly after this long (`90s`, `10m`, `1h`), for a supervisor to restart.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_runtime: Option<Duration>,
    /// How often to look for events written by other processes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
    pub poll_interval: Duration,
    /// How long a handler's lease outlives a worker that died without releasing it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub lease_ttl: Duration,
    /// How many events to keep in flight at once, across all the handlers and segments this
    /// worker runs (events of different aggregates: an aggregate's events still go one at a
    /// time, in order). A sync handler that blocks holds up the others: see
    /// `Worker::concurrency`.
    #[arg(long, default_value_t = events_default_concurrency(), value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// How many events each segment reads per poll (and a batch handler takes at most in
    /// one call).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Open a handler segment's circuit (pausing it) after this many fresh events failed in
    /// a row, for every handler run, over the handlers' own `breaker_after` (default: theirs,
    /// else 5). Retries do not count.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_after: Option<u32>,
    /// How long an open circuit pauses the handler before one fresh event probes (`30s`,
    /// `2m`), over the handlers' own `breaker_cooldown_ms` (default: theirs, else 30s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub breaker_cooldown: Option<Duration>,
    /// How often to log each handler's progress (checkpoint, lag, retries, dead letters).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub progress_every: Duration,
    /// Take another service's events from a broker into this store first (`nats://HOST:PORT`
    /// or `redis://HOST:PORT`): a durable consumer feeds the store, the worker delivers.
    #[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
    #[command(flatten)]
    pub source: NatsSource,
}

/// `status`: output form and the health check's thresholds.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (see the `cli` module documentation for the fields).
    #[arg(long)]
    pub json: bool,
    /// Health check: print one line per problem and exit with code 3 when there is one (0
    /// when healthy). Problems: dead letters (more than `--max-dead`), lag above `--max-lag`
    /// or `--max-lag-age`.
    #[arg(long)]
    pub check: bool,
    /// With `--check`: more events than this behind a handler is a problem.
    #[arg(long, requires = "check")]
    pub max_lag: Option<u64>,
    /// With `--check`: an undelivered event older than this (`30s`, `5m`) is a problem.
    #[arg(long, requires = "check", value_parser = humantime::parse_duration)]
    pub max_lag_age: Option<Duration>,
    /// With `--check`: more dead letters than this (per handler) is a problem.
    #[arg(long, requires = "check", default_value_t = 0)]
    pub max_dead: u64,
}

/// `log`: the filters, in the event log's terms.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this aggregate's events: `Type/id` (as `dead-letters` shows them).
    #[arg(long, value_name = "TYPE/ID")]
    pub aggregate: Option<String>,
    /// The whole chain of this correlation id (an event id starts a chain), in causal order.
    #[arg(long, value_name = "ID")]
    pub correlation: Option<uuid::Uuid>,
    /// Only events of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// The first position to show.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// The last position to show.
    #[arg(long)]
    pub to: Option<u64>,
    /// Show at most this many events (the first ones); a note says when there are more.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print JSON (see the `cli` module documentation for the fields).
    #[arg(long)]
    pub json: bool,
}

/// `serve`: where to listen, and whether to allow actions.
#[cfg(feature = "dashboard")]
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on (loopback by default: put a proxy with TLS in front to reach
    /// it from elsewhere).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Allow retry and drop to whoever signs in with the token in `EVENTS_DASHBOARD_TOKEN`
    /// (at least 16 characters); without it the dashboard is read-only.
    #[arg(long)]
    pub allow_actions: bool,
    /// The path the dashboard is served under behind a proxy (`/events`), for its links.
    #[arg(long, default_value = "")]
    pub base_path: String,
}

/// `relay`: where to publish the log.
#[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// The broker: `nats://HOST:PORT` (JetStream), `redis://HOST:PORT` (Redis Streams) or `amqp://HOST:PORT` (RabbitMQ: the exchange).
    #[arg(long = "to", visible_alias = "nats", env = "EVENTS_RELAY_URL")]
    pub to: String,
    /// The stream (NATS: created or updated with the relay's settings; Redis: the stream key).
    #[arg(long, default_value = "EVENTS")]
    pub stream: String,
    /// The first token of the NATS subjects: `<prefix>.<event name>.<aggregate id>`.
    #[arg(long, default_value = "events")]
    pub subject_prefix: String,
    /// NATS only: how long the stream drops a second publish of the same event id [default: 2m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duplicate_window: Option<Duration>,
    /// Redis only: the stream's approximate bound, `XADD MAXLEN ~ N` (0: no trimming)
    /// [default: 1000000].
    #[arg(long)]
    pub max_len: Option<u64>,
    /// Publishes waiting for their confirmation at once.
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// How often to look for events written by other processes.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "200ms")]
    pub poll_interval: Duration,
    /// How long the relay's lease outlives a relay that died without releasing it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub lease_ttl: Duration,
}

/// `process --source nats://...|redis://...|amqp://...`: where another service's events come from.
#[cfg(any(feature = "nats", feature = "redis", feature = "rabbitmq"))]
#[derive(Debug, Args)]
pub struct NatsSource {
    /// The broker to take events from (`nats://HOST:PORT`, `redis://HOST:PORT` or `amqp://HOST:PORT`).
    #[arg(long = "source")]
    pub url: Option<String>,
    /// The stream the other service relays to (NATS stream, or Redis stream key).
    #[arg(long, default_value = "EVENTS", requires = "url")]
    pub stream: String,
    /// This service's durable consumer (NATS) or consumer group (Redis) on it (one per
    /// consuming service).
    #[arg(long, default_value = "inbox", requires = "url")]
    pub consumer: String,
    /// How long a message handed to a consumer that died waits before it is delivered again
    /// (NATS `AckWait`; Redis: idle time before another consumer claims it).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s", requires = "url")]
    pub ack_wait: Duration,
}

/// The worker's default concurrency, for the `--concurrency` flag.
fn events_default_concurrency() -> u32 {
    crate::worker::DEFAULT_CONCURRENCY as u32
}
