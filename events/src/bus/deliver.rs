//! The worker's one call into the bus: a durable handler run on the payloads of stored events,
//! with a context, its timing, metrics and logs, as the walks run inline handlers.

use super::{Bus, Clock, Target};
use crate::catalog::DurableShim;
use crate::error::BoxError;
use crate::extract::Context;
use crate::handler::Outcome;
use crate::meta::{LazyMeta, Meta};
use crate::report::FailureCause;

/// A durable handler as the worker delivers to it: its call, and the names and index its logs
/// and metrics use.
#[derive(Clone, Copy)]
pub(crate) struct DurableTarget {
    pub(crate) handler: &'static str,
    pub(crate) event: &'static str,
    pub(crate) index: usize,
    pub(crate) call: DurableShim,
}

impl Bus {
    /// Runs a durable handler on the payloads of stored events (one event, or a batch's run),
    /// with the last one's metadata: the worker's one call into the bus for a delivery. The
    /// payloads are what the handler's shim decodes (upcast through the catalog, or an event
    /// set's variant wrapped as its enum: the worker reads event sets, which live above the
    /// core), or why they could not be made (a decode failure: never retried, not timed).
    pub(crate) async fn deliver_stored(
        &self,
        to: DurableTarget,
        meta: Meta,
        payloads: Result<Vec<serde_json::Value>, BoxError>,
    ) -> Outcome {
        let meta = LazyMeta::given(meta);
        let cx = Context::new(self, &meta, 0);
        let target = Target {
            event: to.event,
            handler: to.handler,
            index: to.index,
        };
        // Durable handlers do I/O: their durations are always worth the clock reads.
        let mut clock = Clock::start(true);
        match (payloads, to.call) {
            (Ok(payloads), DurableShim::One(call)) => {
                self.run_async(target, &cx, &mut clock, call(&payloads[0], &cx))
                    .await
            }
            (Ok(payloads), DurableShim::Batch(call)) => {
                self.run_async(target, &cx, &mut clock, call(&payloads, &cx))
                    .await
            }
            (Err(e), _) => Err(Box::new(FailureCause::Decode(e.to_string()))),
        }
    }
}
