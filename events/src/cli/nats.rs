//! `process --source nats://...`: another service's events, taken from NATS JetStream into
//! this store while the worker delivers them.

use std::io::Write;
use std::sync::Arc;

use tokio::sync::watch;

use super::args::NatsSource;
use super::CliError;
use crate::nats::Inbox;
use crate::store::durable::DurableStore;
use crate::worker::{shutdown_signal, Worker};

/// Runs the inbox and the worker side by side until a signal or the worker's time limit;
/// whichever ends first stops the other.
pub(super) async fn process(
    worker: Worker,
    store: &Arc<dyn DurableStore>,
    url: &str,
    source: &NatsSource,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let inbox = Inbox::connect(store, url)
        .await?
        .source(source.stream.as_str(), source.consumer.as_str())
        .ack_wait(source.ack_wait);
    let (stop, stopped) = watch::channel(false);
    let until = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let worker = worker.run_until(until(stopped.clone()));
    let inbox = inbox.run_until(until(stopped));
    let signal = shutdown_signal();
    tokio::pin!(worker, inbox, signal);
    let (summary, taken) = tokio::select! {
        () = &mut signal => {
            let _ = stop.send(true);
            (worker.await, inbox.await)
        }
        summary = &mut worker => {
            let _ = stop.send(true);
            (summary, inbox.await)
        }
        taken = &mut inbox => {
            let _ = stop.send(true);
            (worker.await, taken)
        }
    };
    let (summary, taken) = (summary?, taken?);
    writeln!(out, "{taken}")?;
    write!(out, "{summary}")?;
    if !summary.held_elsewhere.is_empty() {
        let held: Vec<_> = summary.held_elsewhere.keys().map(String::as_str).collect();
        return Err(CliError::HeldElsewhere(held.join(", ")));
    }
    Ok(())
}
