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

use serde::Serialize;

use super::fixture::block_on;
use crate::bus::{Bus, BusBuilder};
use crate::command::Command;
use crate::event::DomainEvent;
use crate::extract::Context;
use crate::meta::{LazyMeta, Meta};
use crate::process::{apply, reaction_of, Applied, Instance, ProcessManager, SentCommand};

/// Starts a fixture of the process manager `M`, with no instance yet.
pub fn process<M: ProcessManager>() -> Process<M> {
    Process {
        builder: Some(Bus::builder()),
        bus: None,
        instance: None,
        correlation: None,
        _manager: PhantomData,
    }
}

/// One instance of a process manager, fed events one by one.
pub struct Process<M> {
    builder: Option<BusBuilder>,
    bus: Option<Bus>,
    instance: Option<Instance<M>>,
    /// The events' correlation id, shared like one flow's (for `correlation` process managers).
    correlation: Option<uuid::Uuid>,
    _manager: PhantomData<fn() -> M>,
}

/// What the event of `when` did.
pub struct Then<M> {
    instance: Option<Instance<M>>,
    sent: Vec<SentCommand>,
    skipped: Option<&'static str>,
}

impl<M: ProcessManager> Process<M> {
    /// Provides a resource its reactions take as `Res<T>` (as `Bus::builder().resource`).
    pub fn resource<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        let builder = self.builder.take().expect("resources are given before the events");
        self.builder = Some(builder.resource(value));
        self
    }

    /// Applies an event that already happened; the commands it sent are not checked.
    pub fn given<E: DomainEvent + Serialize>(mut self, event: E) -> Self {
        let then = self.react(&event);
        self.instance = then.instance;
        self
    }

    /// Applies the event under test.
    pub fn when<E: DomainEvent + Serialize>(mut self, event: E) -> Then<M> {
        self.react(&event)
    }

    fn react<E: DomainEvent + Serialize>(&mut self, event: &E) -> Then<M> {
        let reaction = reaction_of::<M>(E::NAME).unwrap_or_else(|| {
            panic!(
                "process manager `{}` has no reaction to `{}`",
                M::NAME,
                E::NAME
            )
        });
        if self.bus.is_none() {
            let builder = self.builder.take().unwrap_or_else(Bus::builder);
            self.bus = Some(builder.build().unwrap_or_else(|e| {
                panic!("the fixture's bus does not build: {e}; give its resources with `.resource(..)`")
            }));
        }
        let bus = self.bus.as_ref().expect("built");
        let mut meta = Meta::of(event);
        meta.correlation_id = *self.correlation.get_or_insert(meta.event_id);
        let payload = serde_json::to_value(event).expect("the event serializes");
        let lazy = LazyMeta::given(meta);
        let cx = Context::new(bus, &lazy, 0);
        let stored = self.instance.take();
        let applied = block_on(apply(reaction, stored_copy(&stored), &payload, &cx));
        match applied {
            Ok(Applied::Ran { instance, sent }) => Then {
                instance: Some(instance),
                sent,
                skipped: None,
            },
            Ok(Applied::Skipped(why)) => Then {
                instance: stored,
                sent: Vec::new(),
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
