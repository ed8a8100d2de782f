//! `relay --to URL` and `process --source URL`: the log published to a broker, and another
//! service's events taken from one into this store while the worker delivers them. The URL's
//! scheme picks the transport (`nats://`, `redis://`, `amqp://`).

use std::io::Write;
use std::sync::Arc;

use tokio::sync::watch;

use super::args::{NatsSource, RelayArgs};
use super::CliError;
use crate::store::durable::DurableStore;
use crate::transport::{self, Inbox, Relay, RelaySummary};
use crate::worker::{shutdown_signal, Worker};

/// A setting given for a transport it does not belong to.
fn not_for(option: &str, broker: &str, url: &str) -> CliError {
    CliError::Usage(format!(
        "{option} is a {broker} setting; `{url}` is another broker: leave it out"
    ))
}

/// `relay`: until a signal.
pub(super) async fn relay(
    store: &Arc<dyn DurableStore>,
    args: RelayArgs,
) -> Result<RelaySummary, CliError> {
    let url = args.to.as_str();
    let scheme = transport::scheme(url)?;
    if !scheme.is_nats() && args.duplicate_window.is_some() {
        return Err(not_for("--duplicate-window", "NATS", url));
    }
    if !scheme.is_redis() && args.max_len.is_some() {
        return Err(not_for("--max-len", "Redis", url));
    }
    let relay: Relay = match scheme {
        #[cfg(feature = "nats")]
        transport::Scheme::Nats => {
            let mut relay = crate::nats::Relay::connect(store, url)
                .await?
                .stream(args.stream, args.subject_prefix)
                .max_in_flight(args.max_in_flight);
            if let Some(window) = args.duplicate_window {
                relay = relay.duplicate_window(window);
            }
            relay.into_transport()
        }
        #[cfg(feature = "redis")]
        transport::Scheme::Redis => {
            let mut publisher =
                transport::redis::RedisPublisher::connect(url, &args.stream).await?;
            if let Some(max_len) = args.max_len {
                publisher = publisher.max_len(max_len);
            }
            Relay::new(store, Box::new(publisher))
        }
        #[cfg(feature = "rabbitmq")]
        transport::Scheme::Rabbit => {
            let publisher = transport::rabbitmq::RabbitPublisher::connect(
                url,
                &args.stream,
                &args.subject_prefix,
            )
            .await?;
            Relay::new(store, Box::new(publisher))
        }
    };
    Ok(relay
        .max_in_flight(args.max_in_flight)
        .poll_interval(args.poll_interval)
        .lease_ttl(args.lease_ttl)
        .run()
        .await?)
}

/// Runs the inbox and the worker side by side until a signal or the worker's time limit;
/// whichever ends first stops the other.
pub(super) async fn process(
    worker: Worker,
    store: &Arc<dyn DurableStore>,
    url: &str,
    source: &NatsSource,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let inbox: Inbox = match transport::scheme(url)? {
        #[cfg(feature = "nats")]
        transport::Scheme::Nats => crate::nats::Inbox::connect(store, url)
            .await?
            .source(source.stream.as_str(), source.consumer.as_str())
            .ack_wait(source.ack_wait)
            .into_transport(),
        #[cfg(feature = "redis")]
        transport::Scheme::Redis => {
            let consumer = transport::redis::RedisConsumer::connect(
                url,
                &source.stream,
                &source.consumer,
                source.ack_wait,
            )
            .await?;
            Inbox::new(store, Box::new(consumer))
        }
        #[cfg(feature = "rabbitmq")]
        transport::Scheme::Rabbit => {
            let consumer =
                transport::rabbitmq::RabbitConsumer::connect(url, &source.stream, &source.consumer)
                    .await?;
            Inbox::new(store, Box::new(consumer))
        }
    };
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
