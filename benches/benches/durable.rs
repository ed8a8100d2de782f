//! Group `durable`: the SQLite store (`SqliteStore::open` on a real file in a temporary
//! directory; the store sets WAL mode and `synchronous = NORMAL`) and its worker.
//!
//! - `append/1`: `store.append_event(&e, EventMetadata::default())`, one transaction per event;
//! - `append/100`: `store.transaction(|tx| SqliteStore::append_in(tx, stream.at(version), batch))`
//!   with a batch of 100 `NewEvent`s, one transaction per batch. Both time the serialization
//!   (`NewEvent::new`) as well as the SQL, as an application pays both;
//! - `worker_drain/noop_handler`: `Worker::new(..).handlers([..]).drain().await` delivering
//!   10,000 pre-appended events to a durable handler that does nothing but `black_box`, on a
//!   2-worker multi-thread tokio runtime; the checkpoint is reset to 0 between iterations
//!   (untimed).
//!
//! All three report events per second (`Throughput::Elements`).
//!
//! Then, outside criterion (which reports means and medians, not tail percentiles), the
//! commit-to-handler latency: a worker runs (`run_until`, 60 s poll interval, so only the
//! store's in-process wake-up can deliver in time) on a 2-worker multi-thread runtime; the
//! bench thread appends one probe event carrying the nanoseconds since a shared `Instant`
//! base taken just before `append_event`, and waits for the handler to report the `Instant`
//! at which it ran. 2,000 samples (200 with `EVENTS_BENCH_QUICK=1`), 1 ms apart, after 50
//! unrecorded warm-up probes; p50 and p99 go to `<criterion dir>/durable_latency.json`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use events::store::durable::{DurableStore, OnReset, Owner, Rewind};
use events::store::{EventMetadata, NewEvent, SqliteStore, StreamId};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use serde::{Deserialize, Serialize};

mod common;

/// The event appended and delivered by the throughput benchmarks.
#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(name = "bench.tick")]
struct Tick {
    n: u64,
    label: String,
}

impl Tick {
    fn new(n: u64) -> Self {
        Self {
            n,
            label: "a small payload".to_owned(),
        }
    }
}

#[event_handler(durable, name = "bench.durable_noop")]
fn noop(e: &Tick) {
    black_box(e);
}

/// The event of the latency probe: when it was sent, in nanoseconds since [`base`].
#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(name = "bench.probe")]
struct Probe {
    seq: u64,
    sent_ns: u64,
}

/// The `Instant` both sides measure from.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Where the probe handler reports `(seq, received_ns)`.
static RECEIPTS: OnceLock<Mutex<mpsc::Sender<(u64, u64, u64)>>> = OnceLock::new();

#[event_handler(durable, name = "bench.durable_probe")]
fn probe_received(e: &Probe) {
    let received = base().elapsed().as_nanos() as u64;
    if let Some(tx) = RECEIPTS.get() {
        let _ = tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((e.seq, e.sent_ns, received));
    }
}

const DELIVERED: u64 = 10_000;
const BATCH: usize = 100;

/// A fresh store file in a fresh directory under the system's temporary directory, removed on
/// drop.
struct TempStore {
    dir: PathBuf,
    store: SqliteStore,
}

impl TempStore {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "events-bench-{}-{name}-{}",
            std::process::id(),
            base().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        let store = SqliteStore::open(dir.join("events.db")).expect("store opens");
        Self { dir, store }
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable");

    let single = TempStore::new("append-single");
    let mut n = 0;
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("append", 1), |b| {
        b.iter(|| {
            n += 1;
            single
                .store
                .append_event(&Tick::new(n), EventMetadata::default())
                .expect("append")
        })
    });
    drop(single);

    let batched = TempStore::new("append-batch");
    let stream = StreamId {
        aggregate_type: "Bench",
        aggregate_id: "batch",
    };
    let mut version = 0u64;
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::new("append", BATCH), |b| {
        b.iter(|| {
            let events = (0..BATCH as u64)
                .map(|i| NewEvent::new(&Tick::new(version + i), EventMetadata::default()))
                .collect::<Result<Vec<_>, _>>()
                .expect("events serialize");
            let stored = batched
                .store
                .transaction(|tx| SqliteStore::append_in(tx, stream.at(version), events))
                .expect("append");
            version += stored.len() as u64;
            stored
        })
    });
    drop(batched);
    group.finish();
}

fn delivery(c: &mut Criterion) {
    let rt = runtime();
    let bus = Bus::builder().build().expect("bus builds");
    let temp = TempStore::new("delivery");
    let store = &temp.store;
    let mut n = 0;
    while n < DELIVERED {
        store
            .transaction(|tx| {
                let events = (n..(n + 1_000).min(DELIVERED))
                    .map(|i| NewEvent::new(&Tick::new(i), EventMetadata::default()))
                    .collect::<Result<Vec<_>, _>>()?;
                SqliteStore::append_in(
                    tx,
                    StreamId {
                        aggregate_type: "Bench",
                        aggregate_id: "delivery",
                    }
                    .at(n),
                    events,
                )
            })
            .expect("pre-append");
        n = (n + 1_000).min(DELIVERED);
    }

    let drain = || {
        let summary = rt
            .block_on(
                Worker::new(&bus, store)
                    .handlers(["bench.durable_noop"])
                    .drain(),
            )
            .expect("worker drains");
        assert_eq!(summary.handlers["bench.durable_noop"].delivered, DELIVERED);
    };

    let mut group = c.benchmark_group("durable");
    group.sample_size(10);
    group.throughput(Throughput::Elements(DELIVERED));
    group.bench_function(BenchmarkId::new("worker_drain", "noop_handler"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let durable: &dyn DurableStore = store;
                let rewind = Rewind {
                    after: 0,
                    failures: OnReset::DiscardFailures,
                };
                rt.block_on(durable.reset_handler("bench.durable_noop", rewind, &Owner::current()))
                    .expect("reset");
                let start = Instant::now();
                drain();
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// Whether the command line's filter (criterion's positional argument), if any, selects the
/// latency measurement, and whether criterion only lists or tests the benchmarks.
/// Returns the number of samples and whether to write the JSON.
fn latency_mode() -> Option<(usize, bool)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list" || a == "--profile-time") {
        return None;
    }
    const WITH_VALUE: &[&str] = &[
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--color",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
        "--format",
        "--logfile",
    ];
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    if !filters.is_empty()
        && !filters
            .iter()
            .any(|f| "durable/commit_to_handler".contains(f.as_str()) || f.contains("durable"))
    {
        return None;
    }
    // `cargo test --benches` runs the binary without `--bench`: just check that it works.
    if !args.iter().any(|a| a == "--bench") {
        return Some((5, false));
    }
    Some((if events_benches::quick() { 200 } else { 2_000 }, true))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn latency(samples: usize, write: bool) {
    const WARM_UP: usize = 50;
    let (tx, rx) = mpsc::channel();
    RECEIPTS
        .set(Mutex::new(tx))
        .expect("the latency is measured once");
    let _ = base();

    let rt = runtime();
    let bus = Bus::builder().build().expect("bus builds");
    let temp = TempStore::new("latency");
    let store = temp.store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = rt.spawn(
        Worker::new(&bus, &store)
            .handlers(["bench.durable_probe"])
            .poll_interval(Duration::from_secs(60))
            .run_until(async move {
                let _ = stopped.await;
            }),
    );
    // Let the worker take its lease and go idle.
    std::thread::sleep(Duration::from_millis(100));

    let mut latencies = Vec::with_capacity(samples);
    for seq in 0..(WARM_UP + samples) as u64 {
        let sent_ns = base().elapsed().as_nanos() as u64;
        store
            .append_event(&Probe { seq, sent_ns }, EventMetadata::default())
            .expect("append probe");
        let (got, sent, received) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the worker delivers the probe (woken by the append, not the 60 s poll)");
        assert_eq!((got, sent), (seq, sent_ns));
        if seq >= WARM_UP as u64 {
            latencies.push(received.saturating_sub(sent));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = stop.send(());
    let summary = rt
        .block_on(worker)
        .expect("worker task")
        .expect("worker run");
    assert_eq!(
        summary.handlers["bench.durable_probe"].delivered,
        (WARM_UP + samples) as u64
    );

    latencies.sort_unstable();
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let mean = latencies.iter().sum::<u64>() / latencies.len() as u64;
    let (min, max) = (latencies[0], latencies[latencies.len() - 1]);
    eprintln!(
        "durable/commit_to_handler: {} samples: p50 {:.1} µs, p99 {:.1} µs (min {:.1}, mean {:.1}, max {:.1})",
        latencies.len(),
        p50 as f64 / 1e3,
        p99 as f64 / 1e3,
        min as f64 / 1e3,
        mean as f64 / 1e3,
        max as f64 / 1e3,
    );
    let dir = events_benches::criterion_dir();
    if write && std::fs::create_dir_all(&dir).is_ok() {
        let json = format!(
            "{{\"samples\": {}, \"p50_ns\": {p50}, \"p99_ns\": {p99}, \"min_ns\": {min}, \"mean_ns\": {mean}, \"max_ns\": {max}}}\n",
            latencies.len()
        );
        let _ = std::fs::write(dir.join("durable_latency.json"), json);
    }
}

fn main() {
    let mut c = common::config().configure_from_args();
    append(&mut c);
    delivery(&mut c);
    if let Some((samples, write)) = latency_mode() {
        latency(samples, write);
    }
    c.final_summary();
}
