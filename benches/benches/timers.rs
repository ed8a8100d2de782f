//! Durable timers, on SQLite (a file) and PostgreSQL (when `EVENTS_POSTGRES_URL` is set, in a
//! fresh schema): 10,000 timers due within the same second (time from the first due time
//! until all fired, and until their handler ran for all), and the firing latency (due time to
//! handler) of 200 timers, 10 ms apart, with a worker running: p50, p99, max.
//!
//! `cargo bench -p events-benches --bench timers`; prints a Markdown table (in
//! `results.md`, section "Timers").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use events::store::DurableStore;
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
#[event(aggregate = "Bench")]
struct Due {
    #[event(aggregate_id)]
    owner: String,
    /// The due time, in µs since the epoch.
    due_us: u64,
}

/// (due µs, ran µs) of every delivery.
static RAN: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

#[event_handler(durable, name = "bench.timer")]
fn ran(e: &Due) {
    RAN.lock()
        .unwrap()
        .push((e.due_us, micros(SystemTime::now())));
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

async fn schedule(store: &Arc<dyn DurableStore>, bus: &Bus, dues: &[SystemTime]) {
    for (chunk_no, chunk) in dues.chunks(1000).enumerate() {
        store
            .outbox(bus, |outbox| {
                for (i, due) in chunk.iter().enumerate() {
                    let e = Due {
                        owner: format!("o-{}", (chunk_no * 1000 + i) % 64),
                        due_us: micros(*due),
                    };
                    outbox.schedule(*due, &e)?;
                }
                Ok::<_, events::ScheduleError>(())
            })
            .await
            .expect("scheduled");
    }
}

/// Runs a worker until `n` deliveries were seen (or 60 s); returns when the last ran.
async fn work_until(store: &Arc<dyn DurableStore>, bus: &Bus, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let worker = Worker::new(bus, store)
        .poll_interval(Duration::from_millis(100))
        .concurrency(64)
        .batch_size(500);
    worker
        .run_until(async {
            while RAN.lock().unwrap().len() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("worker");
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn measure(name: &str, store: Arc<dyn DurableStore>) {
    let bus = Bus::builder().store(store.clone()).build().unwrap();
    // 10,000 timers due within one second, starting 3 s from now.
    RAN.lock().unwrap().clear();
    let first = SystemTime::now() + Duration::from_secs(3);
    let dues: Vec<SystemTime> = (0..10_000u64)
        .map(|i| first + Duration::from_micros(i * 100))
        .collect();
    schedule(&store, &bus, &dues).await;
    let fired_at = Arc::new(Mutex::new(None));
    let watcher = {
        let (store, fired_at) = (store.clone(), Arc::clone(&fired_at));
        tokio::spawn(async move {
            loop {
                if store
                    .timer_counts(SystemTime::now())
                    .await
                    .unwrap()
                    .scheduled
                    == 0
                {
                    *fired_at.lock().unwrap() = Some(SystemTime::now());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    work_until(&store, &bus, 10_000).await;
    watcher.await.unwrap();
    let ran = RAN.lock().unwrap().clone();
    assert_eq!(ran.len(), 10_000, "every timer's handler ran");
    let last_ran = ran.iter().map(|(_, r)| *r).max().unwrap();
    let fired = fired_at.lock().unwrap().unwrap();
    let all_fired = (micros(fired) as f64 - micros(first) as f64) / 1e6;
    let all_ran = (last_ran as f64 - micros(first) as f64) / 1e6;

    // Latency: 200 timers 10 ms apart, a worker running.
    RAN.lock().unwrap().clear();
    let first = SystemTime::now() + Duration::from_secs(1);
    let dues: Vec<SystemTime> = (0..200u64)
        .map(|i| first + Duration::from_millis(i * 10))
        .collect();
    schedule(&store, &bus, &dues).await;
    work_until(&store, &bus, 200).await;
    let mut late: Vec<u64> = RAN
        .lock()
        .unwrap()
        .iter()
        .map(|(due, ran)| ran.saturating_sub(*due))
        .collect();
    late.sort_unstable();
    println!(
        "| {name} | {all_fired:.2} s | {all_ran:.2} s | {:.1} ms | {:.1} ms | {:.1} ms |",
        quantile(&late, 0.5),
        quantile(&late, 0.99),
        *late.last().unwrap() as f64 / 1000.0
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("| backend | 10,000 due within 1 s: all fired after the first due time | all handled | latency p50 | p99 | max |");
        println!("|---|---:|---:|---:|---:|---:|");
        let dir = std::env::temp_dir().join(format!("events-bench-timers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("timers.db").display());
        measure("SQLite (file, WAL)", events::store::connect(&url).await.unwrap()).await;
        if let Ok(url) = std::env::var("EVENTS_POSTGRES_URL") {
            let admin = events::store::PostgresStore::connect(&url).await.unwrap();
            let schema = format!("bench_timers_{}", std::process::id());
            admin
                .client()
                .await
                .unwrap()
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
                .await
                .unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            let url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
            let store = events::store::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            measure("PostgreSQL (4 segments)", store).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
