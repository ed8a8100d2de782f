//! Gauges of durable delivery, per durable handler, through the `metrics` crate: what an
//! operator alerts on (a growing lag, dead letters) without running `status` by hand.
//!
//! They are read from the [`DurableStore`] (so they work on every backend) by
//! [`record_durable_gauges`], once, or by [`sample_durable_gauges`], a task that samples every
//! few seconds and that the application runs next to its worker. Each gauge has a `handler`
//! label:
//!
//! | gauge | what it counts |
//! |---|---|
//! | `events_durable_lag_events` | events of the handler's type after its checkpoint |
//! | `events_durable_lag_seconds` | how long ago the oldest of them occurred (0 without lag) |
//! | `events_durable_retrying` | events waiting for a retry |
//! | `events_durable_dead_letters` | dead letters waiting for an operator |
//! | `events_durable_held_back` | events held back behind a retry or dead letter of their aggregate |
//!
//! and two without a label, for the durable timers:
//!
//! | gauge | what it counts |
//! |---|---|
//! | `events_timers_scheduled` | timers stored, not fired yet |
//! | `events_timers_overdue` | of those, the ones past their due time (no worker fires them) |
//!
//! Events pending a retry, dead or held back are behind the checkpoint, so they are not in the
//! lag: each has its own gauge.
//!
//! ```no_run
//! # async fn run(store: std::sync::Arc<dyn events::store::durable::DurableStore>) {
//! use std::time::Duration;
//!
//! // Next to the worker, with a metrics recorder (e.g. a Prometheus exporter) installed:
//! tokio::spawn(events::worker::metrics::sample_durable_gauges(
//!     store,
//!     Duration::from_secs(5),
//! ));
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::catalog::catalog;
use crate::handler::HandlerKind;
use crate::store::durable::DurableStore;
use crate::store::StoreError;

/// Reads the progress of every durable handler of the program from `store` once and sets its
/// gauges. Stops at the first store error, leaving the gauges not yet set as they were.
pub async fn record_durable_gauges(store: &dyn DurableStore) -> Result<(), StoreError> {
    let now = SystemTime::now();
    for handler in catalog()
        .handlers()
        .iter()
        .filter(|h| h.kind() == HandlerKind::Durable)
    {
        let name = handler.name();
        let status = crate::worker::handler_status(store, name, handler.event_name()).await?;
        let lag_seconds = status.lag_since.map_or(0.0, |at| {
            now.duration_since(at).unwrap_or_default().as_secs_f64()
        });
        ::metrics::gauge!("events_durable_lag_events", "handler" => name).set(status.lag as f64);
        ::metrics::gauge!("events_durable_lag_seconds", "handler" => name).set(lag_seconds);
        ::metrics::gauge!("events_durable_retrying", "handler" => name).set(status.retrying as f64);
        ::metrics::gauge!("events_durable_dead_letters", "handler" => name).set(status.dead as f64);
        ::metrics::gauge!("events_durable_held_back", "handler" => name).set(status.held as f64);
    }
    let timers = store.timer_counts(now).await?;
    ::metrics::gauge!("events_timers_scheduled").set(timers.scheduled as f64);
    ::metrics::gauge!("events_timers_overdue").set(timers.overdue as f64);
    Ok(())
}

/// Calls [`record_durable_gauges`] every `interval`, first right away, until the task is
/// dropped or aborted. A store error is logged (a warning) and counted in
/// `events_durable_gauge_errors_total`, the gauges keep their last values, and the next round
/// tries again.
pub async fn sample_durable_gauges(store: Arc<dyn DurableStore>, interval: Duration) {
    let errors = ::metrics::counter!("events_durable_gauge_errors_total");
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = record_durable_gauges(store.as_ref()).await {
            errors.increment(1);
            tracing::warn!(error = %e, "cannot sample the durable delivery gauges; the gauges keep their last values");
        }
    }
}
