//! PostgreSQL: append throughput (one event per transaction, batches of 100 to one stream, and
//! outbox batches of 100 events over 100 streams), worker
//! throughput to a no-op handler with 1 and 2 workers (4 segments), and commit-to-handler
//! latency p50/p99 with 1 and 2 workers running. Needs a server: `EVENTS_POSTGRES_URL`
//! (`scripts/servers.sh run cargo bench -p events-benches --bench postgres`); without it, it
//! says so and measures nothing. Prints a Markdown table (copied into `benches/results.md`).
//!
//! Not criterion: latency needs percentiles and the worker runs are seconds long; each number
//! is one timed run after a warm-up. `EVENTS_BENCH_QUICK=1` shrinks every count tenfold.

use std::hint::black_box;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use events::store::durable::{AppendAt, DurableStore, OnReset, Owner, Rewind};
use events::store::{EventMetadata, NewEvent, PostgresStore, StreamId};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(name = "bench.pg_tick", aggregate = "Bench")]
struct Tick {
    #[event(aggregate_id)]
    stream: u32,
    n: u64,
}

#[event_handler(durable, name = "bench.pg_noop")]
fn noop(e: &Tick) {
    black_box(e);
}

/// The latency probe: when it was sent, in nanoseconds since [`base`].
#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(name = "bench.pg_probe", aggregate = "Probe")]
struct Probe {
    #[event(aggregate_id)]
    stream: u32,
    sent_ns: u64,
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

static RECEIPTS: OnceLock<Mutex<mpsc::Sender<u64>>> = OnceLock::new();

#[event_handler(durable, name = "bench.pg_probe")]
fn probe(e: &Probe) {
    let latency = base().elapsed().as_nanos() as u64 - e.sent_ns;
    if let Some(tx) = RECEIPTS.get() {
        let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(latency);
    }
}

fn scale(n: usize) -> usize {
    if events_benches::quick() {
        n / 10
    } else {
        n
    }
}

async fn fresh_store(url: &str, name: &str) -> PostgresStore {
    let admin = PostgresStore::connect(url)
        .await
        .expect("the server answers");
    let schema = format!("bench_{name}_{}", std::process::id());
    admin
        .client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = PostgresStore::connect(&format!(
        "{url}{sep}options=-c%20search_path%3D{schema}&segments=4"
    ))
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store
}

fn tick(stream: u32, n: u64) -> NewEvent {
    NewEvent::new(&Tick { stream, n }, EventMetadata::default()).unwrap()
}

fn stream(id: &str) -> StreamId<'_> {
    StreamId {
        aggregate_type: "Bench",
        aggregate_id: id,
    }
}

/// Events per second of single appends and of batches of 100 (to one stream), and of outbox
/// batches of 100 events over 100 streams.
async fn appends(bus: &Bus, store: &Arc<dyn DurableStore>) -> (f64, f64, f64) {
    let n = scale(2_000);
    let start = Instant::now();
    for i in 0..n {
        let id = (i % 50).to_string();
        store
            .append_to(
                AppendAt::End(stream(&id)),
                vec![tick((i % 50) as u32, i as u64)],
            )
            .await
            .unwrap();
    }
    let single = n as f64 / start.elapsed().as_secs_f64();
    let batches = scale(500);
    let start = Instant::now();
    for b in 0..batches {
        let events = (0..100).map(|i| tick(1000, (b * 100 + i) as u64)).collect();
        store
            .append_to(AppendAt::End(stream("batch")), events)
            .await
            .unwrap();
    }
    let batched = (batches * 100) as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for b in 0..batches {
        let publish = |outbox: &mut events::Outbox<'_>| {
            for i in 0..100 {
                let stream = 2000 + i as u32;
                outbox.publish(Tick {
                    stream,
                    n: (b * 100 + i) as u64,
                });
            }
            Ok::<_, events::BoxError>(())
        };
        store.outbox(bus, publish).await.unwrap();
    }
    let outbox = (batches * 100) as f64 / start.elapsed().as_secs_f64();
    (single, batched, outbox)
}

/// Events per second delivered to the no-op handler by `workers` workers draining together.
async fn throughput(bus: &Bus, store: &Arc<dyn DurableStore>, workers: usize) -> f64 {
    store
        .reset_handler(
            "bench.pg_noop",
            Rewind {
                after: 0,
                failures: OnReset::DiscardFailures,
            },
            &Owner::current(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (bus, store) = (bus.clone(), store.clone());
        runs.spawn(async move {
            Worker::new(&bus, &store)
                .handlers(["bench.pg_noop"])
                .drain()
                .await
                .unwrap()
                .handlers["bench.pg_noop"]
                .delivered
        });
    }
    let delivered: u64 = runs.join_all().await.into_iter().sum();
    delivered as f64 / start.elapsed().as_secs_f64()
}

/// p50 and p99 commit-to-handler latency in ms with `workers` workers running.
async fn latency(bus: &Bus, store: &Arc<dyn DurableStore>, workers: usize) -> (f64, f64) {
    let (tx, rx) = mpsc::channel();
    let slot = RECEIPTS.get_or_init(|| Mutex::new(tx.clone()));
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = tx;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (bus, store, mut stopped) = (bus.clone(), store.clone(), stopped.clone());
        running.spawn(async move {
            Worker::new(&bus, &store)
                .handlers(["bench.pg_probe"])
                .poll_interval(Duration::from_secs(60))
                .run_until(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
                .unwrap();
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // claims taken, listeners up
    let samples = scale(1_000);
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples + 20 {
        let e = Probe {
            stream: (i % 16) as u32,
            sent_ns: base().elapsed().as_nanos() as u64,
        };
        store
            .append_event(&e, EventMetadata::default())
            .await
            .unwrap();
        let ns = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(30)))
            .expect("the probe arrives");
        if i >= 20 {
            latencies.push(ns);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.send(true).unwrap();
    running.join_all().await;
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)] as f64 / 1e6
    };
    (at(0.50), at(0.99))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to measure.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Ok(url) = std::env::var("EVENTS_POSTGRES_URL") else {
        println!("postgres benchmark skipped: EVENTS_POSTGRES_URL is not set (run it through scripts/servers.sh run ...)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bus = Bus::builder().build().unwrap();
        let store: Arc<dyn DurableStore> = Arc::new(fresh_store(&url, "pg").await);
        let (single, batched, outbox) = appends(&bus, &store).await;
        let one = throughput(&bus, &store, 1).await;
        let two = throughput(&bus, &store, 2).await;
        let (p50_1, p99_1) = latency(&bus, &store, 1).await;
        let (p50_2, p99_2) = latency(&bus, &store, 2).await;
        println!("| PostgreSQL (4 segments) | measured |");
        println!("|---|---:|");
        println!("| append, 1 event per transaction | {single:.0} events/s |");
        println!("| append, batches of 100 | {batched:.0} events/s |");
        println!("| outbox, batches of 100 events over 100 streams | {outbox:.0} events/s |");
        println!("| worker throughput to a no-op handler, 1 worker | {one:.0} events/s |");
        println!(
            "| worker throughput to a no-op handler, 2 workers | {two:.0} events/s ({:.2}x) |",
            two / one
        );
        println!("| commit-to-handler latency, 1 worker | p50 {p50_1:.2} ms, p99 {p99_1:.2} ms |");
        println!("| commit-to-handler latency, 2 workers | p50 {p50_2:.2} ms, p99 {p99_2:.2} ms |");
    });
}
