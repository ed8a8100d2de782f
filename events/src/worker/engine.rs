//! The backend-neutral decisions of durable delivery, in plain Rust: what to record after an
//! attempt (retry with back-off and jitter, or dead letter), which events to hold back behind
//! their aggregate's pending failure, and when a handler's circuit opens. The worker applies
//! them through whichever [`DurableStore`](crate::store::DurableStore) it runs on.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime};

use crate::handler::{Outcome, RetryPolicy};
use crate::report::FailureCause;
use crate::store::durable::{aggregate_key, Record};
use crate::store::StoredEvent;

/// What to record after attempt number `attempt` (from 1) of an event whose position is
/// `position`: done, a retry after the policy's back-off (with jitter), or a dead letter once
/// the attempts are used up. An event that cannot be decoded will not decode on a retry
/// either: it is dead at once.
pub(crate) fn decide(
    outcome: &Outcome,
    attempt: u32,
    retry: &RetryPolicy,
    position: u64,
    now: SystemTime,
) -> Record {
    match outcome {
        Ok(()) => Record::Done,
        Err(cause) if matches!(**cause, FailureCause::Decode(_)) => Record::Dead {
            attempts: attempt,
            error: cause.to_string(),
        },
        Err(cause) if attempt >= retry.max_attempts => Record::Dead {
            attempts: attempt,
            error: cause.to_string(),
        },
        Err(cause) => Record::Retry {
            attempts: attempt,
            at: now + jitter(retry.backoff(attempt), position),
            error: cause.to_string(),
        },
    }
}

/// A random 50 to 100% of `delay`, so retries of many events do not arrive in lockstep.
pub(crate) fn jitter(delay: Duration, salt: u64) -> Duration {
    let random = RandomState::new().hash_one((salt, SystemTime::now()));
    let fraction = 0.5 + (random % 1_000) as f64 / 2_000.0;
    delay.mul_f64(fraction)
}

/// The aggregates with a pending failure: their later events are held back, so a handler sees
/// each aggregate's events in order.
#[derive(Debug, Default)]
pub(crate) struct HoldBack {
    blocked: HashSet<String>,
}

impl HoldBack {
    /// Starts from the aggregates the store says are blocked.
    pub(crate) fn new(blocked: HashSet<String>) -> Self {
        Self { blocked }
    }

    /// Whether `event` must wait behind an earlier pending event of its aggregate.
    pub(crate) fn holds(&self, event: &StoredEvent) -> bool {
        self.blocked.contains(&aggregate_key(event))
    }

    /// Notes what was recorded for `event`: anything but `Done` blocks its aggregate.
    pub(crate) fn note(&mut self, event: &StoredEvent, record: &Record) {
        if *record != Record::Done {
            self.blocked.insert(aggregate_key(event));
        }
    }
}

/// Pauses a handler segment after `threshold` fresh events failed in a row; after the
/// cool-down one fresh event probes (half open): a success closes the circuit, a failure
/// opens it again. Only first attempts count: a retry of an event that already failed says
/// nothing new about the handler's health, and counting them let a few poison events, whose
/// retries come due together, hold the circuit open while healthy events waited.
#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures_in_a_row: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            failures_in_a_row: 0,
            open_until: None,
        }
    }

    /// Records a first attempt's result at `now`; `true` when this failure opened the circuit.
    /// While the circuit is open, the results of the events that were already in flight when
    /// it opened change nothing: the probe after the cool-down decides.
    pub(crate) fn record(&mut self, ok: bool, now: Instant) -> bool {
        if self.remaining(now).is_some() {
            return false;
        }
        if ok {
            self.close();
            return false;
        }
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= self.threshold {
            self.open_until = Some(now + self.cooldown);
            return true;
        }
        false
    }

    /// Closes the circuit (a probe succeeded, or there was nothing to probe with).
    pub(crate) fn close(&mut self) {
        self.failures_in_a_row = 0;
        self.open_until = None;
    }

    /// Failures in a row so far.
    pub(crate) fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row
    }

    /// How long the handler must still wait at `now`, if its circuit is open.
    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.open_until
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Whether the cool-down is over but no probe has succeeded yet: the next fresh event is
    /// the probe, delivered alone.
    pub(crate) fn half_open(&self, now: Instant) -> bool {
        self.open_until.is_some() && self.remaining(now).is_none()
    }

    /// The threshold and the cool-down.
    pub(crate) fn settings(&self) -> (u32, Duration) {
        (self.threshold, self.cooldown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventMetadata;

    fn failed(cause: FailureCause) -> Outcome {
        Err(Box::new(cause))
    }

    fn event(position: u64, aggregate: &str) -> StoredEvent {
        StoredEvent {
            position,
            event_id: uuid::Uuid::nil(),
            name: "e".into(),
            version: 1,
            aggregate_type: "A".into(),
            aggregate_id: aggregate.into(),
            sequence: position,
            payload: serde_json::Value::Null,
            metadata: EventMetadata::default(),
            occurred_at: SystemTime::UNIX_EPOCH,
        }
    }

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        backoff_ms: 1_000,
        ..RetryPolicy::DEFAULT
    };

    #[test]
    fn failures_retry_with_jittered_backoff_until_the_last_attempt() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(decide(&Ok(()), 1, &POLICY, 7, now), Record::Done);
        let cause = || failed(FailureCause::Error("refused".into()));
        for attempt in 1..3 {
            let Record::Retry {
                attempts,
                at,
                error,
            } = decide(&cause(), attempt, &POLICY, 7, now)
            else {
                panic!("attempt {attempt} is retried");
            };
            assert_eq!((attempts, error.as_str()), (attempt, "refused"));
            let full = POLICY.backoff(attempt);
            let wait = at.duration_since(now).unwrap();
            assert!(wait >= full / 2 && wait <= full, "{wait:?} of {full:?}");
        }
        assert_eq!(
            decide(&cause(), 3, &POLICY, 7, now),
            Record::Dead {
                attempts: 3,
                error: "refused".into()
            }
        );
    }

    #[test]
    fn an_undecodable_event_is_dead_at_once() {
        let outcome = failed(FailureCause::Decode("missing field `id`".into()));
        let record = decide(&outcome, 1, &POLICY, 1, SystemTime::now());
        assert!(
            matches!(record, Record::Dead { attempts: 1, ref error } if error.contains("missing field `id`")),
            "{record:?}"
        );
    }

    #[test]
    fn anything_but_done_holds_back_the_rest_of_its_aggregate_only() {
        let mut hold = HoldBack::new(HashSet::from(["A/1".to_owned()]));
        assert!(hold.holds(&event(1, "1")));
        assert!(!hold.holds(&event(2, "2")));
        hold.note(&event(2, "2"), &Record::Done);
        assert!(!hold.holds(&event(3, "2")));
        hold.note(&event(3, "2"), &Record::Hold);
        assert!(hold.holds(&event(4, "2")));
        assert!(!hold.holds(&event(5, "3")));
    }

    #[test]
    fn the_circuit_opens_after_failures_in_a_row_and_a_success_closes_it() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(3, Duration::from_secs(30));
        assert!(!breaker.record(false, t0));
        assert!(!breaker.record(true, t0), "a success resets the count");
        assert!(!breaker.record(false, t0));
        assert!(!breaker.record(false, t0));
        assert_eq!(breaker.remaining(t0), None);
        assert!(breaker.record(false, t0), "third in a row opens it");
        assert_eq!(breaker.remaining(t0), Some(Duration::from_secs(30)));
        assert!(
            !breaker.record(false, t0),
            "events in flight then change nothing"
        );
        assert!(!breaker.record(true, t0));
        assert_eq!(breaker.failures_in_a_row(), 3);
        assert_eq!(
            breaker.remaining(t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(20))
        );
        assert_eq!(breaker.remaining(t0 + Duration::from_secs(30)), None);
        assert!(breaker.half_open(t0 + Duration::from_secs(30)));
        assert!(!breaker.half_open(t0 + Duration::from_secs(29)));
        let t1 = t0 + Duration::from_secs(30);
        assert!(breaker.record(false, t1), "a failed probe opens it again");
        assert_eq!(breaker.remaining(t1), Some(Duration::from_secs(30)));
        let t2 = t1 + Duration::from_secs(30);
        assert!(breaker.half_open(t2));
        assert!(!breaker.record(true, t2));
        assert_eq!(
            (
                breaker.remaining(t2),
                breaker.half_open(t2),
                breaker.failures_in_a_row()
            ),
            (None, false, 0),
            "a successful probe closes it"
        );
    }

    #[test]
    fn jitter_spreads_retries_over_half_to_all_of_the_delay() {
        let delay = Duration::from_secs(10);
        let waits: HashSet<Duration> = (0..200).map(|event| jitter(delay, event)).collect();
        assert!(
            waits.iter().all(|w| *w >= delay / 2 && *w <= delay),
            "{waits:?}"
        );
        // Events retried together do not come back together.
        assert!(waits.len() > 50, "only {} distinct waits", waits.len());
        assert_eq!(jitter(Duration::ZERO, 1), Duration::ZERO);
    }
}
