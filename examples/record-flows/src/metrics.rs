//! `--metrics-addr ADDR`: Prometheus metrics at `http://ADDR/metrics` (off by default), and the
//! example's own scrape printed at the end of its run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use events::store::durable::DurableStore;
use events::BoxError;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Serves the metrics when the arguments ask for it (`--metrics-addr ADDR`); the address.
/// Call it before building the bus: the bus takes its counters from the recorder installed.
pub fn serve_from_args() -> Result<Option<SocketAddr>, BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = match args.as_slice() {
        [] => return Ok(None),
        [flag, value] if flag == "--metrics-addr" => value.parse().map_err(|e| {
            format!("--metrics-addr `{value}` is not an address ({e}); write e.g. 127.0.0.1:9000")
        })?,
        _ => return Err("usage: record-flows [--metrics-addr 127.0.0.1:9000]".into()),
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full("events_handler_duration_seconds".into()),
            &[0.001, 0.01, 0.1, 1.0, 10.0],
        )?
        .install()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    Ok(Some(addr))
}

/// Samples the durable gauges once, then prints what a Prometheus server scraping `addr`
/// gets (without the histograms' buckets, to keep it short).
pub async fn print_scrape(addr: SocketAddr, store: &dyn DurableStore) -> Result<(), BoxError> {
    events::worker::metrics::record_durable_gauges(store).await?;
    // A blocking client off the runtime's thread, which serves the endpoint meanwhile.
    let body = tokio::task::spawn_blocking(move || get_metrics(addr)).await??;
    println!("Prometheus metrics (GET http://{addr}/metrics, buckets left out):");
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("_bucket{"))
    {
        println!("  {line}");
    }
    Ok(())
}

fn get_metrics(addr: SocketAddr) -> Result<String, BoxError> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.contains(" 200 ") => Ok(body.to_owned()),
        _ => Err(format!("unexpected answer from {addr}: {response}").into()),
    }
}
