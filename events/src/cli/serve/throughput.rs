//! Throughput over the last minutes: every few seconds, how many events each durable handler
//! has delivered so far (its events in the log minus its lag), kept in memory for ten
//! minutes; the rate between two samples is what the overview charts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::super::output::rfc3339;
use super::App;
use crate::catalog::catalog;
use crate::handler::HandlerKind;
use crate::worker::handler_status;

/// How often the sampler reads the store.
pub(super) const EVERY: Duration = Duration::from_secs(5);
/// How many samples are kept: ten minutes.
const KEEP: usize = 120;
/// A name no handler has: its "lag" is every event of the type, delivered or not.
const NOBODY: &str = "\u{0}dashboard: every event";

/// The samples, oldest first.
#[derive(Default)]
pub(super) struct History(Mutex<VecDeque<Sample>>);

struct Sample {
    at: SystemTime,
    /// Events delivered so far, by handler.
    delivered: BTreeMap<&'static str, u64>,
}

/// `GET /api/throughput`.
#[derive(Serialize)]
pub(super) struct ThroughputJson {
    interval_seconds: u64,
    pub(super) handlers: Vec<HandlerRates>,
}

#[derive(Serialize)]
pub(super) struct HandlerRates {
    pub(super) handler: &'static str,
    pub(super) samples: Vec<Rate>,
}

#[derive(Serialize)]
pub(super) struct Rate {
    at: String,
    pub(super) events_per_second: f64,
}

impl History {
    fn push(&self, sample: Sample) {
        let mut samples = self.0.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back(sample);
        while samples.len() > KEEP {
            samples.pop_front();
        }
    }

    /// The delivery rate of every durable handler between consecutive samples.
    pub(super) fn rates(&self) -> ThroughputJson {
        let samples = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let handlers = durable_handlers()
            .map(|(handler, _)| HandlerRates {
                handler,
                samples: samples
                    .iter()
                    .zip(samples.iter().skip(1))
                    .filter_map(|(a, b)| {
                        let seconds = b.at.duration_since(a.at).ok()?.as_secs_f64();
                        let done = b
                            .delivered
                            .get(handler)?
                            .checked_sub(*a.delivered.get(handler)?);
                        Some(Rate {
                            at: rfc3339(b.at),
                            // A replay moves the count back: no rate for that interval.
                            events_per_second: done? as f64 / seconds.max(0.001),
                        })
                    })
                    .collect(),
            })
            .collect();
        ThroughputJson {
            interval_seconds: EVERY.as_secs(),
            handlers,
        }
    }
}

fn durable_handlers() -> impl Iterator<Item = (&'static str, &'static str)> {
    catalog()
        .handlers()
        .iter()
        .filter(|h| h.kind() == HandlerKind::Durable)
        .map(|h| (h.name(), h.event_name()))
}

/// Samples until the dashboard is dropped; a failed read is logged and skipped.
pub(super) fn spawn_sampler(app: Weak<App>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(app) = app.upgrade() else { return };
            let mut delivered = BTreeMap::new();
            for (handler, event) in durable_handlers() {
                let counts = async {
                    let all = handler_status(app.store.as_ref(), NOBODY, event).await?;
                    let own = handler_status(app.store.as_ref(), handler, event).await?;
                    Ok::<_, crate::store::StoreError>(all.lag.saturating_sub(own.lag))
                };
                match counts.await {
                    Ok(n) => {
                        delivered.insert(handler, n);
                    }
                    Err(e) => tracing::warn!(handler, "dashboard: cannot sample throughput: {e}"),
                }
            }
            app.throughput.push(Sample {
                at: SystemTime::now(),
                delivered,
            });
        }
    });
}
