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
//! ```
//!
//! Handlers write what they did to `$EVENTS_DB.handled` (one line per delivery), so the crash
//! test can check that nothing was lost. The process tests set a few more variables:
//! `HANDLER_DELAY_MS` (work per delivery), `PRINT_DELIVERIES=1` (handlers also print to
//! stdout, as many do), `LOG_STDOUT=1` (logs to stdout, the usual `tracing_subscriber::fmt()`
//! set-up), `WORKER_THREADS=N` (a multi-thread runtime instead of the current-thread one), and
//! `STALL_ON_ORDER=N` (the process freezes itself with SIGSTOP while handling order N, as a
//! long GC pause or a suspended VM would, and reports that attempt as failed once continued).

use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use events::store::{EventMetadata, SqliteStore};
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
}

impl Journal {
    fn from_env(db: &str) -> Self {
        let var = |name| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        Self {
            path: format!("{db}.handled"),
            delay: Duration::from_millis(var("HANDLER_DELAY_MS").unwrap_or(0)),
            print: var("PRINT_DELIVERIES") == Some(1),
            stall_on: var("STALL_ON_ORDER"),
        }
    }

    fn record(&self, handler: &str, e: &OrderPlaced, meta: &Meta) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
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
        return Err(format!(
            "stock service rejected order {}: no items",
            e.order
        ));
    }
    journal
        .record("orders.update_stock", e, &meta)
        .map_err(|err| err.to_string())
}

fn main() -> ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("LOG_STDOUT").as_deref() == Ok("1") {
        logs.with_writer(std::io::stdout).init();
    } else {
        logs.with_writer(std::io::stderr).init();
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
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let db = std::env::var("EVENTS_DB").unwrap_or_else(|_| "async-worker.db".into());
    let store = match SqliteStore::open(&db) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let journal = Journal::from_env(&db);
    let bus = match Bus::builder().resource(journal).build() {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("place-orders") {
        return place_orders(&store, &args[2..]);
    }
    events::cli::run(&bus, &store).await
}

/// `place-orders <count> [--customers N] [--empty-every K]`: the application's side, storing
/// `OrderPlaced` events (every K-th order has no items and will be dead-lettered by the stock
/// handler).
fn place_orders(store: &SqliteStore, args: &[String]) -> ExitCode {
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let count = args.first().and_then(|v| v.parse().ok()).unwrap_or(10);
    let customers = arg("--customers", 5).max(1);
    let empty_every = arg("--empty-every", 0);
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
        };
        if let Err(err) = store.append_event(&e, EventMetadata::default()) {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    }
    println!("placed {count} orders");
    ExitCode::SUCCESS
}
