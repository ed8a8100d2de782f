//! [`serve_metrics`]: the Prometheus endpoint of an application that embeds the CLI, in one
//! call, with the handler durations as histograms and the durable gauges sampled from the
//! store each command opens (so a command that only reads still creates no store).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::store::durable::DurableStore;

/// Whether [`serve_metrics`] installed the endpoint: commands then sample the gauges.
static SERVED: AtomicBool = AtomicBool::new(false);

/// The buckets of `events_handler_duration_seconds`, in seconds: 1 ms to 10 s.
const DURATION_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0];

/// How often the durable gauges are read from the store while a command runs.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Serves Prometheus metrics at `http://ADDR/metrics` for the rest of the process: every
/// counter of the crate, `events_handler_duration_seconds` as a histogram (1 ms to 10 s), and,
/// once a command ([`run`](super::run), [`run_command`](super::run_command)) opened its store,
/// the durable gauges (lag, retries, dead letters, held back, open circuits, timers), sampled
/// every second. Call it in `main` before building the bus (which takes its counters from the
/// recorder installed here) and on the tokio runtime that runs the command (its listener is a
/// task of that runtime).
///
/// ```no_run
/// # async fn run(bus_builder: events::BusBuilder) -> Result<(), Box<dyn std::error::Error>> {
/// events::cli::serve_metrics("127.0.0.1:9000".parse()?)?;
/// let bus = bus_builder.build()?;
/// # Ok(()) }
/// ```
pub fn serve_metrics(addr: SocketAddr) -> Result<(), MetricsError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full("events_handler_duration_seconds".into()),
            &DURATION_BUCKETS,
        )
        .and_then(PrometheusBuilder::install)
        .map_err(|source| MetricsError { addr, source })?;
    SERVED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Starts sampling the durable gauges of `store` when the endpoint is served.
pub(super) fn sample_gauges(store: &Arc<dyn DurableStore>) {
    if SERVED.load(Ordering::SeqCst) {
        tokio::spawn(crate::worker::metrics::sample_durable_gauges(
            Arc::clone(store),
            SAMPLE_EVERY,
        ));
    }
}

/// [`serve_metrics`] could not serve: the address is taken, or a recorder is installed already.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct MetricsError {
    addr: SocketAddr,
    #[source]
    source: BuildError,
}
