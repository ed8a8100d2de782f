//! Async handlers processed by worker commands, as a PHP framework does it: handlers marked
//! durable never run inline; the event is stored, and `async-worker process <handler>` (one
//! process per handler, kept alive by supervisord or systemd, see `deploy/`) delivers them. With
//! `--max-runtime` a worker exits on its own and the supervisor starts a fresh one.
//!
//! ```sh
//! export EVENTS_DB=/tmp/shop.db
//! cargo run -p async-worker -- place-orders 20           # the application stores events
//! cargo run -p async-worker -- process orders.send_confirmation --max-runtime 5s
//! cargo run -p async-worker -- status                    # any events CLI command works
//! cargo run -p async-worker -- --metrics-addr 127.0.0.1:9000 process orders.update_stock
//! curl -s 127.0.0.1:9000/metrics                         # Prometheus metrics while it runs
//! ```
//!
//! Handlers write what they did to `$EVENTS_DB.handled` (one line per delivery), so the crash
//! test can check that nothing was lost. The process tests set a few more variables:
//! `HANDLER_DELAY_MS` (work per delivery), `PRINT_DELIVERIES=1` (handlers also print to
//! stdout, as many do), `LOG_STDOUT=1` (logs to stdout, the usual `tracing_subscriber::fmt()`
//! set-up), `WORKER_THREADS=N` (a multi-thread runtime instead of the current-thread one), and
//! `ASYNC_DELAY=1` (the async stock handler awaits its `HANDLER_DELAY_MS` as a remote call does,
//! instead of blocking the thread, and the sync one does not wait: the scaling measurements of
//! issue 22),
//! `STALL_ON_ORDER=N` (the process freezes itself with SIGSTOP while handling order N, as a
//! long GC pause or a suspended VM would, and reports that attempt as failed once continued),
//! and `NO_LOGGER=1` (no `tracing` subscriber, as an application without logging: the CLI's
//! worker then logs plain lines to stderr itself).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use events::cli::StoreSource;
use events::store::{DurableStore, EventMetadata};
use events::{event_handler, Bus, DomainEvent, Meta, Res};
use serde::{Deserialize, Serialize};

/// A customer placed an order.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(name = "orders.order_placed", aggregate = "Customer")]
struct OrderPlaced {
    #[event(aggregate_id)]
    customer: u32,
    order: u64,
    /// Items to take from stock; an order for `0` items is rejected by the stock service.
    items: u32,
    /// The customer's note, free text (quoted in the stock service's rejection).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    note: String,
}

/// Where handlers report what they did: one line per delivery, written in one `write`.
struct Journal {
    path: String,
    /// Simulated work per delivery (`HANDLER_DELAY_MS`), so a crash lands mid-stream.
    delay: Duration,
    /// Also print each delivery to stdout (`PRINT_DELIVERIES=1`).
    print: bool,
    /// Freeze the process while handling this order (`STALL_ON_ORDER`).
    stall_on: Option<u64>,
    /// The async handler awaits `delay` instead of blocking (`ASYNC_DELAY=1`).
    await_delay: bool,
}

impl Journal {
    fn from_env(db: &str) -> Self {
        let var = |name| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        Self {
            path: format!("{db}.handled"),
            delay: Duration::from_millis(var("HANDLER_DELAY_MS").unwrap_or(0)),
            print: var("PRINT_DELIVERIES") == Some(1),
            stall_on: var("STALL_ON_ORDER"),
            await_delay: var("ASYNC_DELAY") == Some(1),
        }
    }

    fn record(&self, handler: &str, e: &OrderPlaced, meta: &Meta) -> std::io::Result<()> {
        if !self.await_delay {
            std::thread::sleep(self.delay);
        }
        if self.stall_on == Some(e.order) {
            std::process::Command::new("kill")
                .args(["-STOP", &std::process::id().to_string()])
                .status()?;
            return Err(std::io::Error::other(format!(
                "stalled while handling order {}",
                e.order
            )));
        }
        if self.print {
            println!("{handler}: order {} handled", e.order);
        }
        let line = format!("{handler} {} {} {}\n", meta.event_id(), e.customer, e.order);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?
            .write_all(line.as_bytes())
    }
}

#[event_handler(durable, name = "orders.send_confirmation")]
fn send_confirmation(e: &OrderPlaced, journal: Res<Journal>, meta: Meta) -> std::io::Result<()> {
    journal.record("orders.send_confirmation", e, &meta)
}

#[event_handler(
    durable,
    name = "orders.update_stock",
    max_attempts = 2,
    backoff_ms = 10
)]
async fn update_stock(e: &OrderPlaced, journal: Res<Journal>, meta: Meta) -> Result<(), String> {
    if e.items == 0 {
        // As a remote service's error reads: a long text over several lines.
        let mut error = format!(
            "stock service rejected order {order}: no items\n  request: POST /stock/reservations {{\"order\": {order}, \"customer\": {customer}, \"items\": 0}}\n  response: 422 Unprocessable Entity: a reservation needs at least one item",
            order = e.order,
            customer = e.customer
        );
        if !e.note.is_empty() {
            error.push_str(&format!("\n  the order's note: {}", e.note));
        }
        return Err(error);
    }
    if journal.await_delay {
        tokio::time::sleep(journal.delay).await;
    }
    journal
        .record("orders.update_stock", e, &meta)
        .map_err(|err| err.to_string())
}

/// The application's command line: its own `place-orders` beside the events operator
/// commands, in one `--help`.
#[derive(Debug, Parser)]
#[command(
    name = "async-worker",
    version,
    about = "Orders stored as events, delivered by one worker process per durable handler"
)]
struct Cli {
    /// Serve Prometheus metrics at http://ADDR/metrics while the command runs.
    #[arg(long, global = true, value_name = "ADDR", value_parser = parse_addr)]
    metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    store: events::cli::StoreArgs,
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Store `OrderPlaced` events, as the application does (no handler runs here).
    PlaceOrders {
        /// How many orders.
        #[arg(default_value_t = 10)]
        count: u64,
        /// Spread them over this many customers (aggregates).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        customers: u64,
        /// Every K-th order has no items: the stock handler dead-letters it (0: none).
        #[arg(long, value_name = "K", default_value_t = 0)]
        empty_every: u64,
        /// A note on every order (free text, stored in the payload).
        #[arg(long, default_value = "")]
        note: String,
    },
    #[command(flatten)]
    Events(events::cli::Command),
}

fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|e| format!("not an address ({e}); write e.g. 127.0.0.1:9000"))
}

fn main() -> ExitCode {
    // Arguments first: `--help`, `--version` and mistakes need no runtime, logger or store.
    let cli = Cli::parse();
    if std::env::var("NO_LOGGER").as_deref() != Ok("1") {
        let filter =
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
        let logs = tracing_subscriber::fmt().with_env_filter(filter);
        if std::env::var("LOG_STDOUT").as_deref() == Ok("1") {
            logs.with_writer(std::io::stdout).init();
        } else {
            logs.with_writer(std::io::stderr).init();
        }
    }
    // One thread by default, as a worker process under a supervisor needs no more.
    let threads: usize = std::env::var("WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut runtime = match threads {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let db = std::env::var("EVENTS_DB").unwrap_or_else(|_| "async-worker.db".into());
    // `--database-url` / `EVENTS_DATABASE_URL` (e.g. postgres://...) instead of the SQLite file;
    // the handlers' journal stays next to `EVENTS_DB`. The CLI opens the store itself, so a
    // command that only reads never creates it.
    let store = cli.store.or(StoreSource::url(format!("sqlite://{db}")));
    // Installed before the bus is built, as the bus takes its counters from the recorder; the
    // durable gauges are sampled from the store each command opens (so `status` on a store
    // that does not exist still creates none).
    if let Some(addr) = cli.metrics_addr {
        if let Err(e) = events::cli::serve_metrics(addr) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let journal = Journal::from_env(&db);
    let bus = match Bus::builder().resource(journal).build() {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        AppCommand::PlaceOrders {
            count,
            customers,
            empty_every,
            note,
        } => match open(store).await {
            Ok(store) => {
                eprintln!("store: {}", store.location());
                place_orders(&store, count, customers, empty_every, &note).await
            }
            Err(code) => code,
        },
        AppCommand::Events(command) => events::cli::run_command(&bus, store, command).await,
    }
}

/// Opens (or creates) the store, for the application's own writes.
async fn open(store: StoreSource) -> Result<Arc<dyn DurableStore>, ExitCode> {
    let opened = match store {
        StoreSource::Opened(store) => Ok(store),
        StoreSource::Url(url) => events::store::connect(&url).await,
    };
    opened.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

/// `place-orders`: the application's side, storing `OrderPlaced` events (every
/// `empty_every`-th order has no items and will be dead-lettered by the stock handler).
async fn place_orders(
    store: &Arc<dyn DurableStore>,
    count: u64,
    customers: u64,
    empty_every: u64,
    note: &str,
) -> ExitCode {
    for order in 1..=count {
        let items = if empty_every > 0 && order % empty_every == 0 {
            0
        } else {
            1 + (order % 3) as u32
        };
        let e = OrderPlaced {
            customer: (order % customers) as u32,
            order,
            items,
            note: note.to_owned(),
        };
        if let Err(err) = store.append_event(&e, EventMetadata::default()).await {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    }
    println!("placed {count} orders");
    ExitCode::SUCCESS
}
