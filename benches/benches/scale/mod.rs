//! The body of the `types_1` and `types_1000` benchmarks: the same code in a program with one
//! event type and in one with 1,000 (each with one sync handler).
//!
//! - Group `event_types`: `publish` of one event type, `events_publish[_timed]/<types>`.
//!   Dispatch goes straight to the event type's own handler list, so this must not grow with
//!   the number of types.
//! - Group `startup`: `Bus::builder().build()`, `bus_build/<handlers>`: the start-up checks
//!   (unique names, resources) and the per-handler metrics handles, plus dropping the bus. The
//!   catalog itself (the walk of the link-time registry, sorting the handlers) is gathered once
//!   per process behind a `OnceLock`, so it is not in this loop: its one-off cost is timed once,
//!   before criterion starts, printed, and written to `<criterion dir>/cold_start/<types>.json`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion};
use events::{Bus, DomainEvent};

pub fn main<E: DomainEvent>(types: usize, probe: fn() -> E) {
    // The first build walks the catalog; time it before anything else touches `events`.
    let start = Instant::now();
    let bus = Bus::builder().build().expect("bus builds");
    let cold = start.elapsed();
    assert_eq!(bus.catalog().events().len(), types);
    assert_eq!(bus.catalog().handlers().len(), types);
    eprintln!(
        "first Bus build with {types} event type(s) (catalog walk included): {} ns",
        cold.as_nanos()
    );
    let dir = events_benches::criterion_dir().join("cold_start");
    if std::fs::create_dir_all(&dir).is_ok() {
        let json = format!("{{\"types\": {types}, \"ns\": {}}}\n", cold.as_nanos());
        let _ = std::fs::write(dir.join(format!("{types}.json")), json);
    }

    let mut c = super::common::config().configure_from_args();
    bench(&mut c, types, probe);
    c.final_summary();
}

fn bench<E: DomainEvent>(c: &mut Criterion, types: usize, probe: fn() -> E) {
    let event = probe();

    let mut group = c.benchmark_group("event_types");
    let bus = Bus::builder().build().expect("bus builds");
    let report = bus.publish(&event).expect("no durable handlers");
    assert!(report.is_ok() && report.ran() == 1, "{report}");
    group.bench_with_input(BenchmarkId::new("events_publish", types), &event, |b, e| {
        b.iter(|| bus.publish(black_box(e)))
    });
    let bus = Bus::builder()
        .record_durations(true)
        .build()
        .expect("bus builds");
    group.bench_with_input(
        BenchmarkId::new("events_publish_timed", types),
        &event,
        |b, e| b.iter(|| bus.publish(black_box(e))),
    );
    group.finish();

    let mut group = c.benchmark_group("startup");
    group.bench_function(BenchmarkId::new("bus_build", types), |b| {
        b.iter(|| Bus::builder().build().expect("bus builds"))
    });
    group.finish();
}
