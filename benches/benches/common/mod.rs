//! Shared by the benchmark binaries (each includes it with `mod common;`).

#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;

/// The configuration of every benchmark. `EVENTS_BENCH_QUICK=1` shortens it for CI (about a
/// minute for everything); command-line options (`--quick`, `--measurement-time`, ...) still
/// apply on top, because `criterion_group!` calls `configure_from_args` after this.
pub fn config() -> Criterion {
    let c = Criterion::default();
    if events_benches::quick() {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(20)
            .nresamples(10_000)
    } else {
        c.warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(4))
    }
}
