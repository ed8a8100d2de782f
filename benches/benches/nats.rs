//! Group `nats` (needs `nats-server` on PATH: each run starts its own, JetStream on, on a free
//! loopback port with a throw-away store; or `EVENTS_NATS_URL`), and the same two numbers over
//! Redis Streams when `EVENTS_REDIS_URL` is set and RabbitMQ when `EVENTS_RABBITMQ_URL` is set
//! (`scripts/servers.sh` exports both), outside
//! criterion because both numbers are one long measurement each:
//!
//! - `nats/relay_throughput`: 50,000 events (5,000 with `EVENTS_BENCH_QUICK=1`) pre-appended to
//!   an SQLite file store in batches of 100; `Relay::drain()` timed from its start to the last
//!   acknowledgement from the server and the final checkpoint write (connecting, creating the
//!   stream and reconciling included). Events per second.
//! - `nats/commit_to_remote_handler`: two stores in one process (the ordering service's and the
//!   shipping service's files), the relay running on the first, the inbox and a worker (60 s
//!   poll interval: only wake-ups deliver in time) on the second. The bench thread appends one
//!   probe event carrying the nanoseconds since a shared `Instant`, and waits for the shipping
//!   handler to report when it ran: commit -> relay -> JetStream -> inbox append -> worker ->
//!   handler. 1,000 samples (100 quick), 1 ms apart, after 50 unrecorded warm-up probes.
//!
//! They go to `<criterion dir>/nats.json`, `redis.json` and `rabbitmq.json` (p50/p99 in ns,
//! events/s). The relay and the inbox are the transport ones, chosen by URL.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use events::store::{EventMetadata, NewEvent, SqliteStore, StreamId};
use events::transport::{Inbox, Relay};
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use serde::{Deserialize, Serialize};

/// The relayed event of the throughput run.
#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(name = "bench.order_placed", aggregate = "Order")]
struct OrderPlaced {
    #[event(aggregate_id)]
    order: u64,
    label: String,
}

/// The latency probe: when it was committed, in nanoseconds since [`base`].
#[derive(DomainEvent, Serialize, Deserialize, Clone, Debug)]
#[event(name = "bench.remote_probe")]
struct RemoteProbe {
    seq: u64,
    sent_ns: u64,
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

static RECEIPTS: Mutex<Option<mpsc::Sender<(u64, u64, u64)>>> = Mutex::new(None);

#[event_handler(durable, name = "bench.remote_probe_received")]
fn probe_received(e: &RemoteProbe) {
    let received = base().elapsed().as_nanos() as u64;
    if let Some(tx) = RECEIPTS.lock().unwrap().as_ref() {
        let _ = tx.send((e.seq, e.sent_ns, received));
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(kind: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("events-bench-{kind}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        Self(dir)
    }

    fn store(&self, name: &str) -> SqliteStore {
        SqliteStore::open(self.0.join(format!("{name}.db"))).expect("store opens")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// RabbitMQ drops what no queue takes: the consuming queue exists before the relay starts.
async fn bind_first(url: &str, stream: &str, consumer: &str) {
    if url.starts_with("amqp") {
        events::transport::rabbitmq::RabbitConsumer::connect(url, stream, consumer)
            .await
            .expect("queue");
    }
}

/// Events per second from the log to acknowledged in the stream.
async fn relay_throughput(url: &str, tmp: &TempDir, events: u64, stream: &str) -> f64 {
    let store = tmp.store("throughput");
    for first in (0..events).step_by(100) {
        let batch: Vec<_> = (first..(first + 100).min(events))
            .map(|order| {
                let e = OrderPlaced {
                    order,
                    label: "a small payload".into(),
                };
                NewEvent::new(&e, EventMetadata::default()).expect("serializes")
            })
            .collect();
        let stream = StreamId {
            aggregate_type: "Order",
            aggregate_id: "bench",
        };
        store
            .transaction(|tx| SqliteStore::append_in(tx, stream.at(first), batch))
            .expect("append");
    }
    bind_first(url, stream, "bench").await;
    let start = Instant::now();
    let summary = Relay::connect(&store, url, stream, "bench_throughput")
        .await
        .expect("connect")
        .drain()
        .await
        .expect("relay");
    let elapsed = start.elapsed();
    assert_eq!(summary.published, events);
    events as f64 / elapsed.as_secs_f64()
}

/// Commit-to-remote-handler latencies, sorted, in ns.
async fn remote_latency(url: &str, tmp: &TempDir, samples: usize, stream: &str) -> Vec<u64> {
    const WARM_UP: usize = 50;
    let (tx, rx) = mpsc::channel();
    *RECEIPTS.lock().unwrap() = Some(tx);
    let _ = base();
    let (ordering, shipping) = (tmp.store("ordering"), tmp.store("shipping"));
    let bus = Bus::builder().build().expect("bus builds");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    bind_first(url, stream, "shipping").await;
    let relay = Relay::connect(&ordering, url, stream, "bench_latency")
        .await
        .expect("connect")
        .poll_interval(Duration::from_secs(60));
    let relay = tokio::spawn(relay.run_until(until(stopped.clone())));
    let inbox = Inbox::connect(&shipping, url, stream, "shipping")
        .await
        .expect("connect");
    let inbox = tokio::spawn(inbox.run_until(until(stopped.clone())));
    let worker = tokio::spawn(
        Worker::new(&bus, &shipping)
            .handlers(["bench.remote_probe_received"])
            .poll_interval(Duration::from_secs(60))
            .run_until(until(stopped)),
    );
    let mut latencies = Vec::with_capacity(samples);
    let rx = std::sync::Arc::new(Mutex::new(rx));
    for seq in 0..(WARM_UP + samples) as u64 {
        let sent_ns = base().elapsed().as_nanos() as u64;
        ordering
            .append_event(&RemoteProbe { seq, sent_ns }, EventMetadata::default())
            .expect("append probe");
        let rx = rx.clone();
        let (got, sent, received) = tokio::task::spawn_blocking(move || {
            rx.lock().unwrap().recv_timeout(Duration::from_secs(20))
        })
        .await
        .expect("join")
        .expect("the probe reaches the remote handler");
        assert_eq!((got, sent), (seq, sent_ns));
        if seq >= WARM_UP as u64 {
            latencies.push(received.saturating_sub(sent));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = stop.send(true);
    relay.await.expect("join").expect("relay");
    inbox.await.expect("join").expect("inbox");
    worker.await.expect("join").expect("worker");
    latencies.sort_unstable();
    latencies
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| a == "--list")
        || (!filters.is_empty() && !filters.iter().any(|f| f.contains("nats")))
    {
        return;
    }
    // `cargo test --benches` runs without `--bench`: a short check that it works.
    let (events, samples, write) = if !args.iter().any(|a| a == "--bench") {
        (500, 5, false)
    } else if events_benches::quick() {
        (5_000, 100, true)
    } else {
        (50_000, 1_000, true)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Some(nats) = nats_harness::server!("bench_nats") {
        let streams = ("BENCH_THROUGHPUT".to_owned(), "BENCH_LATENCY".to_owned());
        measure(&rt, "nats", nats.url(), streams, (events, samples, write));
    }
    match std::env::var("EVENTS_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            // Fresh keys per run: a Redis server keeps its streams between runs.
            let run = std::process::id();
            let streams = (
                format!("bench_throughput_{run}"),
                format!("bench_latency_{run}"),
            );
            measure(&rt, "redis", &url, streams, (events, samples, write));
        }
        _ => {
            eprintln!("redis: skipped: EVENTS_REDIS_URL is not set (scripts/servers.sh exports it)")
        }
    }
    match std::env::var("EVENTS_RABBITMQ_URL") {
        Ok(url) if !url.is_empty() => {
            // Fresh exchanges per run: the server keeps them between runs.
            let run = std::process::id();
            let streams = (
                format!("bench_throughput_{run}"),
                format!("bench_latency_{run}"),
            );
            measure(&rt, "rabbitmq", &url, streams, (events, samples, write));
        }
        _ => eprintln!(
            "rabbitmq: skipped: EVENTS_RABBITMQ_URL is not set (scripts/servers.sh exports it)"
        ),
    }
}

fn measure(
    rt: &tokio::runtime::Runtime,
    kind: &str,
    url: &str,
    (throughput_stream, latency_stream): (String, String),
    (events, samples, write): (u64, usize, bool),
) {
    let tmp = TempDir::new(kind);
    let rate = rt.block_on(relay_throughput(url, &tmp, events, &throughput_stream));
    eprintln!(
        "{kind}/relay_throughput: {events} events: {:.1}k events/s",
        rate / 1e3
    );
    let latencies = rt.block_on(remote_latency(url, &tmp, samples, &latency_stream));
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    eprintln!(
        "{kind}/commit_to_remote_handler: {} samples: p50 {:.3} ms, p99 {:.3} ms (max {:.3})",
        latencies.len(),
        p50 as f64 / 1e6,
        p99 as f64 / 1e6,
        latencies[latencies.len() - 1] as f64 / 1e6,
    );
    let dir = events_benches::criterion_dir();
    if write && std::fs::create_dir_all(&dir).is_ok() {
        let json = format!(
            "{{\"relay_events\": {events}, \"relay_events_per_s\": {rate:.0}, \"samples\": {}, \"p50_ns\": {p50}, \"p99_ns\": {p99}}}\n",
            latencies.len()
        );
        let _ = std::fs::write(dir.join(format!("{kind}.json")), json);
    }
}
