//! `process::<M>().given(events).when(event).then_sends(commands)`: a process manager's
//! reactions, tested without a store or a worker.
//!
//! ```
//! use events::process::Reaction;
//! use events::testing::process;
//! use events::{process_manager, Command, DomainEvent};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(DomainEvent, Serialize, Deserialize)]
//! struct OrderPlaced { order: String }
//! #[derive(DomainEvent, Serialize, Deserialize)]
//! struct OrderPaid { order: String }
//!
//! #[derive(Command, Serialize, Deserialize, Debug, PartialEq)]
//! struct Ship { order: String }
//! # #[events::command_handler] fn ship(_: Ship) -> Result<(), String> { Ok(()) }
//!
//! #[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
//! struct Checkout { placed: bool }
//!
//! #[process_manager(name = "shop.checkout", association = order, sends(Ship))]
//! impl Checkout {
//!     #[start]
//!     fn placed(&mut self, _: &OrderPlaced) { self.placed = true }
//!     #[complete]
//!     fn paid(&mut self, e: &OrderPaid, out: &mut Reaction<Self>) {
//!         out.send(Ship { order: e.order.clone() });
//!     }
//! }
//!
//! process::<Checkout>()
//!     .given(OrderPlaced { order: "o-1".into() })
//!     .when(OrderPaid { order: "o-1".into() })
//!     .then_sends([Ship { order: "o-1".into() }])
//!     .then_completed();
//! // An event for an instance that was never started does nothing.
//! process::<Checkout>()
//!     .when(OrderPaid { order: "o-2".into() })
//!     .then_skipped();
//! ```

use std::fmt::Debug;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::fixture::block_on;
use crate::bus::{Bus, BusBuilder};
use crate::command::Command;
use crate::event::DomainEvent;
use crate::extract::Context;
use crate::meta::{LazyMeta, Meta};
use crate::process::{
    apply, reaction_of, Applied, Instance, ProcessManager, SentCommand, TimeoutChange,
};

/// Starts a fixture of the process manager `M`, with no instance yet.
pub fn process<M: ProcessManager>() -> Process<M> {
    Process {
        builder: Some(Bus::builder()),
        bus: None,
        instance: None,
        correlation: None,
        start: SystemTime::now(),
        elapsed: Duration::ZERO,
        pending: Vec::new(),
        _manager: PhantomData,
    }
}

/// A timeout scheduled and not fired or cancelled yet, in the fixture's clock.
struct Pending {
    key: String,
    due_at: SystemTime,
    event: &'static str,
    payload: serde_json::Value,
}

/// One instance of a process manager, fed events one by one.
pub struct Process<M> {
    builder: Option<BusBuilder>,
    bus: Option<Bus>,
    instance: Option<Instance<M>>,
    /// The events' correlation id, shared like one flow's (for `correlation` process managers).
    correlation: Option<uuid::Uuid>,
    /// The fixture's clock: `start + elapsed`, moved only by `when_clock_advances`.
    start: SystemTime,
    elapsed: Duration,
    /// The instance's timeouts, by key.
    pending: Vec<Pending>,
    _manager: PhantomData<fn() -> M>,
}

/// What the event of `when` did.
pub struct Then<M> {
    instance: Option<Instance<M>>,
    sent: Vec<SentCommand>,
    timeouts: Vec<TimeoutChange>,
    skipped: Option<&'static str>,
}

impl<M: ProcessManager> Process<M> {
    /// Provides a resource its reactions take as `Res<T>` (as `Bus::builder().resource`).
    pub fn resource<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        let builder = self
            .builder
            .take()
            .expect("resources are given before the events");
        self.builder = Some(builder.resource(value));
        self
    }

    /// Applies an event that already happened; the commands it sent are not checked.
    pub fn given<E: DomainEvent + Serialize>(mut self, event: E) -> Self {
        let then = self.react_to(&event);
        self.instance = then.instance;
        self
    }

    /// Applies the event under test.
    pub fn when<E: DomainEvent + Serialize>(mut self, event: E) -> Then<M> {
        self.react_to(&event)
    }

    /// Moves the fixture's clock forward by `by` and fires every timeout due by then, in due
    /// order, each through its reaction: what they did, together.
    ///
    /// # Panics
    /// If no timeout is due by then.
    #[track_caller]
    pub fn when_clock_advances(mut self, by: Duration) -> Then<M> {
        self.elapsed += by;
        let now = self.start + self.elapsed;
        self.pending.sort_by_key(|p| p.due_at);
        let due: Vec<Pending> = {
            let (due, later) = self.pending.drain(..).partition(|p| p.due_at <= now);
            self.pending = later;
            due
        };
        assert!(
            !due.is_empty(),
            "no timeout of `{}` is due after {by:?}",
            M::NAME
        );
        let mut all = Then {
            instance: None,
            sent: Vec::new(),
            timeouts: Vec::new(),
            skipped: None,
        };
        for timer in due {
            let meta = Meta::named(timer.event, 1, None, None);
            let then = self.react(timer.event, &timer.payload, meta);
            self.instance = then.instance;
            all.sent.extend(then.sent);
            all.timeouts.extend(then.timeouts);
            all.skipped = all.skipped.or(then.skipped);
        }
        all.instance = self.instance.take();
        all
    }

    fn react_to<E: DomainEvent + Serialize>(&mut self, event: &E) -> Then<M> {
        let payload = serde_json::to_value(event).expect("the event serializes");
        self.react(E::NAME, &payload, Meta::of(event))
    }

    fn react(&mut self, name: &str, payload: &serde_json::Value, mut meta: Meta) -> Then<M> {
        let reaction = reaction_of::<M>(name).unwrap_or_else(|| {
            panic!("process manager `{}` has no reaction to `{name}`", M::NAME,)
        });
        if self.bus.is_none() {
            let builder = self.builder.take().unwrap_or_else(Bus::builder);
            // Its reactions only draw their parameters from it: no command is sent.
            self.bus = Some(builder.build_unchecked());
        }
        let bus = self.bus.as_ref().expect("built");
        meta.correlation_id = *self.correlation.get_or_insert(meta.event_id);
        let lazy = LazyMeta::given(meta);
        let cx = Context::new(bus, &lazy, 0);
        let stored = self.instance.take();
        let key = (reaction.key)(payload, cx.meta())
            .unwrap_or_else(|e| panic!("the association id of `{name}` does not read: {e}"));
        let applied = block_on(apply(reaction, &key, stored_copy(&stored), payload, &cx));
        match applied {
            Ok(Applied::Ran {
                instance,
                sent,
                timeouts,
                ..
            }) => {
                let now = self.start + self.elapsed;
                for change in &timeouts {
                    match change {
                        TimeoutChange::Scheduled {
                            key,
                            due,
                            event,
                            payload,
                        } => {
                            self.pending.retain(|p| &p.key != key);
                            self.pending.push(Pending {
                                key: key.clone(),
                                due_at: due.at(now),
                                event,
                                payload: payload.clone(),
                            });
                        }
                        TimeoutChange::Cancelled { key } => self.pending.retain(|p| &p.key != key),
                    }
                }
                Then {
                    instance: Some(instance),
                    sent,
                    timeouts,
                    skipped: None,
                }
            }
            Ok(Applied::Skipped(why)) => Then {
                instance: stored,
                sent: Vec::new(),
                timeouts: Vec::new(),
                skipped: Some(why),
            },
            Err(e) => panic!("reaction `{}` failed: {e}", reaction.name),
        }
    }
}

/// The instance as the store would hand it over (a copy through JSON: the reaction cannot
/// change the fixture's own value).
fn stored_copy<M: ProcessManager>(instance: &Option<Instance<M>>) -> Option<Instance<M>> {
    instance.as_ref().map(|i| {
        let json = serde_json::to_value(i).expect("the state serializes");
        serde_json::from_value(json).expect("the state deserializes")
    })
}

impl<M: ProcessManager> Then<M> {
    /// Asserts the commands sent, in order.
    #[track_caller]
    pub fn then_sends<C: Command + Serialize>(self, expected: impl IntoIterator<Item = C>) -> Self {
        let expected: Vec<SentCommand> = expected
            .into_iter()
            .map(|c| SentCommand {
                name: C::NAME,
                payload: serde_json::to_value(&c).expect("the command serializes"),
            })
            .collect();
        assert_eq!(self.sent, expected, "commands sent");
        self
    }

    /// Asserts that the timeout `key` was scheduled with `event` (at any due time).
    #[track_caller]
    pub fn then_schedules<E: DomainEvent + Serialize>(self, key: &str, event: E) -> Self {
        let payload = serde_json::to_value(&event).expect("the event serializes");
        let found = self.timeouts.iter().any(|t| {
            matches!(t, TimeoutChange::Scheduled { key: k, event: name, payload: p, .. }
                if k == key && *name == E::NAME && *p == payload)
        });
        assert!(
            found,
            "timeout `{key}` scheduled with that `{}`; timeouts: {:?}",
            E::NAME,
            self.timeouts
        );
        self
    }

    /// Asserts that the timeout `key` was cancelled.
    #[track_caller]
    pub fn then_cancels(self, key: &str) -> Self {
        let found = self
            .timeouts
            .iter()
            .any(|t| matches!(t, TimeoutChange::Cancelled { key: k } if k == key));
        assert!(
            found,
            "timeout `{key}` cancelled; timeouts: {:?}",
            self.timeouts
        );
        self
    }

    /// Asserts that no command was sent.
    #[track_caller]
    pub fn then_sends_nothing(self) -> Self {
        assert_eq!(self.sent, [], "no command sent");
        self
    }

    /// Asserts the instance's state afterwards.
    #[track_caller]
    pub fn then_state(self, expected: M) -> Self
    where
        M: PartialEq + Debug,
    {
        let state = self.instance.as_ref().and_then(|i| i.state.as_ref());
        assert_eq!(state, Some(&expected), "state");
        self
    }

    /// Asserts that the event completed the instance.
    #[track_caller]
    pub fn then_completed(self) -> Self {
        assert!(
            self.instance.as_ref().is_some_and(|i| i.completed),
            "the instance completed"
        );
        self
    }

    /// Asserts that the event was skipped (no instance started, or one completed before).
    #[track_caller]
    pub fn then_skipped(self) -> Self {
        assert!(self.skipped.is_some(), "the event was skipped");
        self
    }

    /// The commands sent.
    pub fn sent(&self) -> &[SentCommand] {
        &self.sent
    }

    /// The state afterwards (`None`: no instance, or deleted at completion).
    pub fn state(&self) -> Option<&M> {
        self.instance.as_ref().and_then(|i| i.state.as_ref())
    }
}
