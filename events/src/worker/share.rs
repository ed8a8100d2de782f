//! Fair shares without a coordinator: each worker of a handler beats in the store's member list
//! ([`DurableStore::heartbeat`]) and takes at most `ceil(segments / live members)` of the
//! handler's segments ([`fair_share`]). A worker holding more than its share (another one
//! joined) hands the surplus over between two deliveries; a worker with no segment stands by
//! and takes over a segment once one frees (released, or its holder's lease lapsed).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Options;
use crate::stop::Stop;
use crate::store::durable::{fair_share, DurableStore, Heartbeat, Member};

/// The segments of one handler this worker holds, and how many it may hold: shared by the
/// handler's subscriptions (one per segment) and its membership loop.
#[derive(Debug)]
pub(crate) struct Share {
    handler: &'static str,
    segments: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// At most this many segments (`None`: no limit, a drain takes what it can).
    quota: Option<u32>,
    /// The segments held.
    held: BTreeSet<u32>,
    /// Claims being attempted now, each counted against the quota until it is settled.
    claiming: u32,
}

impl Share {
    /// A share that the membership loop limits (`limited`), or none (a drain).
    pub(crate) fn new(handler: &'static str, segments: u32, limited: bool) -> Arc<Self> {
        Arc::new(Self {
            handler,
            segments,
            state: Mutex::new(State {
                // Nothing is claimed before the first heartbeat says how many workers there are.
                quota: if limited { Some(0) } else { None },
                held: BTreeSet::new(),
                claiming: 0,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a claim about to be attempted against the quota; `false` when the share is full
    /// (do not try). Settle it with [`acquired`](Self::acquired) or [`missed`](Self::missed).
    pub(crate) fn try_claim(&self) -> bool {
        let mut s = self.state();
        let room = s
            .quota
            .is_none_or(|q| (s.held.len() as u32 + s.claiming) < q);
        if room {
            s.claiming += 1;
        }
        room
    }

    /// The attempted claim was taken.
    pub(crate) fn acquired(&self, segment: u32) {
        let mut s = self.state();
        s.claiming = s.claiming.saturating_sub(1);
        s.held.insert(segment);
    }

    /// The attempted claim is held by another worker.
    pub(crate) fn missed(&self) {
        let mut s = self.state();
        s.claiming = s.claiming.saturating_sub(1);
    }

    /// The segment was released or lost.
    pub(crate) fn dropped(&self, segment: u32) {
        self.state().held.remove(&segment);
    }

    /// Whether this held segment is beyond the share (the highest held ones are): hand it
    /// over.
    pub(crate) fn surplus(&self, segment: u32) -> bool {
        let s = self.state();
        match s.quota {
            None => false,
            Some(q) => s
                .held
                .iter()
                .position(|&held| held == segment)
                .is_some_and(|rank| rank as u32 >= q),
        }
    }

    fn held(&self) -> Vec<u32> {
        self.state().held.iter().copied().collect()
    }

    fn set_members(&self, members: usize) -> u32 {
        let quota = fair_share(self.segments, members);
        self.state().quota = Some(quota);
        quota
    }
}

/// How often a worker beats: well within its lease, so others see it join (and hand segments
/// over) within a few seconds, and see it gone within the lease time.
pub(crate) fn beat_every(ttl: Duration) -> Duration {
    (ttl / 5).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

/// A worker's membership of one handler: beats for it, keeping the share's quota at the fair
/// share of the live members; logs the segments held whenever they change, and once when the
/// worker stands by. A failed beat is logged, counted and tried again at the next beat (the
/// quota stays as it was).
pub(crate) struct Membership {
    store: Arc<dyn DurableStore>,
    share: Arc<Share>,
    options: Options,
    shown: Option<Vec<u32>>,
    beats: u32,
    stood_by: bool,
}

impl Membership {
    pub(crate) fn new(store: Arc<dyn DurableStore>, share: Arc<Share>, options: Options) -> Self {
        Self {
            store,
            share,
            options,
            shown: None,
            beats: 0,
            stood_by: false,
        }
    }

    /// One heartbeat.
    pub(crate) async fn beat(&mut self) {
        let handler = self.share.handler;
        let beat = Heartbeat {
            handler,
            owner: &self.options.owner,
            ttl: self.options.lease_ttl,
        };
        let members = match self.store.heartbeat(beat).await {
            Ok(members) => members,
            Err(e) => {
                metrics::counter!("events_worker_store_errors_total", "handler" => handler)
                    .increment(1);
                tracing::warn!(handler, error = %e, retry_in = ?beat_every(self.options.lease_ttl), "cannot renew this worker's membership; trying again");
                return;
            }
        };
        self.beats += 1;
        let quota = self.share.set_members(members.len());
        let held = self.share.held();
        // The first beats come before the subscriptions had a chance to claim.
        if held.is_empty() && self.beats >= 3 && !self.stood_by {
            self.stood_by = true;
            tracing::info!(
                handler,
                members = members.len(),
                share = quota,
                "standby: other workers hold every segment of `{handler}` ({}); taking over when one frees",
                others(&members, &self.options)
            );
        }
        if !held.is_empty() && self.shown.as_ref() != Some(&held) {
            tracing::info!(
                handler,
                members = members.len(),
                share = quota,
                "holding segments {} of {} ({} live workers)",
                list(&held),
                self.share.segments,
                members.len()
            );
            self.shown = Some(held);
        }
    }

    /// Beats until stopped, then leaves the member list.
    pub(crate) async fn run(mut self, mut stop: Stop) {
        let every = beat_every(self.options.lease_ttl);
        while !stop.wait(every, None).await {
            self.beat().await;
        }
        let handler = self.share.handler;
        if let Err(e) = self.store.leave(handler, &self.options.owner).await {
            tracing::warn!(handler, error = %e, "could not leave the handler's members; the entry lapses after the lease time");
        }
    }
}

fn others(members: &[Member], options: &Options) -> String {
    let others: Vec<String> = members
        .iter()
        .filter(|m| m.owner.worker != options.owner.worker)
        .map(Member::to_string)
        .collect();
    if others.is_empty() {
        "no other live worker yet: their leases have not lapsed".to_owned()
    } else {
        others.join("; ")
    }
}

/// `0,1,2` for segments.
pub(crate) fn list(segments: &[u32]) -> String {
    let s: Vec<String> = segments.iter().map(u32::to_string).collect();
    s.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_share_refuses_claims_and_hands_its_highest_segments_over() {
        let share = Share::new("h", 8, true);
        assert!(!share.try_claim(), "nothing before the first heartbeat");
        share.set_members(1);
        for segment in 0..8 {
            assert!(share.try_claim());
            share.acquired(segment);
        }
        assert!(!share.try_claim());
        assert!((0..8).all(|s| !share.surplus(s)));
        share.set_members(3); // ceil(8 / 3) = 3
        let surplus: Vec<u32> = (0..8).filter(|&s| share.surplus(s)).collect();
        assert_eq!(surplus, [3, 4, 5, 6, 7]);
        for s in surplus {
            share.dropped(s);
        }
        assert!((0..3).all(|s| !share.surplus(s)));
        assert!(!share.try_claim());
        share.set_members(2);
        assert!(share.try_claim());
        share.missed();
        assert!(share.try_claim());
    }

    #[test]
    fn a_drain_has_no_quota() {
        let share = Share::new("h", 4, false);
        for segment in 0..4 {
            assert!(share.try_claim());
            share.acquired(segment);
        }
        assert!(share.try_claim());
        assert!(!share.surplus(3));
    }
}
