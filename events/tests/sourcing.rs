//! Event sourcing the cqrs-es way: an enum with struct variants as the event set, async
//! command handling with services, commands routed to their aggregate, and the fixture.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use events::store::{EventMetadata, EventStore, MemoryStore, StreamId};
use events::testing::{given, given_no_events};
use events::{
    event_handler, Bus, Command, DomainEvent, EventSet, EventSourced, Handle, Meta, Repository,
    SendError, Services,
};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, EventSet, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(aggregate = "Tab")]
enum TabEvent {
    Opened {
        table: u32,
    },
    #[event_set(name = "tab.drink_ordered", version = 2)]
    DrinkOrdered {
        drink: String,
        price: u32,
    },
    Paid(u32),
    Closed,
}

#[derive(Default, Debug)]
struct Tab {
    open: bool,
    due: u32,
}

impl EventSourced for Tab {
    const TYPE: &'static str = "Tab";
    type Event = TabEvent;
    fn apply(&mut self, event: &TabEvent) {
        match event {
            TabEvent::Opened { .. } => self.open = true,
            TabEvent::DrinkOrdered { price, .. } => self.due += price,
            TabEvent::Paid(amount) => self.due -= amount,
            TabEvent::Closed => self.open = false,
        }
    }
}

/// The bar's price list, a service the aggregate asks (async), mocked in tests.
#[derive(Default)]
struct Bar {
    asked: AtomicU32,
    /// Appended behind the aggregate's back on the first call: forces one conflict.
    interfere: Option<MemoryStore>,
}

impl Services for Bar {}

impl Bar {
    async fn price(&self, drink: &str) -> Option<u32> {
        if self.asked.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Some(store) = &self.interfere {
                let stream = StreamId {
                    aggregate_type: "Tab",
                    aggregate_id: "t-1",
                };
                let version = store.read_stream(stream).await.unwrap().len() as u64;
                let event = TabEvent::Paid(0).to_new_event(EventMetadata::default());
                store
                    .append(stream.at(version), vec![event.unwrap()])
                    .await
                    .unwrap();
            }
        }
        tokio::task::yield_now().await;
        (drink != "absinthe").then_some(4)
    }
}

#[derive(Debug, thiserror::Error)]
enum TabError {
    #[error("the tab is not open")]
    NotOpen,
    #[error("we do not serve {0}")]
    NotServed(String),
}

#[derive(Command, Clone, Debug)]
#[command(aggregate = Tab)]
enum TabCommand {
    Open {
        #[command(id)]
        tab: String,
        table: u32,
    },
    Order {
        drink: String,
    },
}

/// Closes a tab; it carries its id, so `bus.send` routes it.
#[derive(Command, Clone, Debug)]
#[command(aggregate = Tab)]
struct CloseTab {
    #[command(id)]
    tab: String,
}

impl Handle<CloseTab> for Tab {
    type Error = TabError;
    type Services = ();
    async fn handle(&self, _: CloseTab, _: &()) -> Result<Vec<TabEvent>, TabError> {
        if !self.open {
            return Err(TabError::NotOpen);
        }
        Ok(vec![TabEvent::Closed])
    }
}

/// An order whose price look-up may run again: it opts in to re-running after a conflict.
#[derive(Command, Clone, Debug)]
#[command(aggregate = Tab, retry_on_conflict = 3)]
struct OrderAgain {
    drink: String,
}

impl Handle<OrderAgain> for Tab {
    type Error = TabError;
    type Services = Bar;
    async fn handle(&self, command: OrderAgain, bar: &Bar) -> Result<Vec<TabEvent>, TabError> {
        let order = TabCommand::Order {
            drink: command.drink,
        };
        <Tab as Handle<TabCommand>>::handle(self, order, bar).await
    }
}

impl Handle<TabCommand> for Tab {
    type Error = TabError;
    type Services = Bar;
    async fn handle(&self, command: TabCommand, bar: &Bar) -> Result<Vec<TabEvent>, TabError> {
        match command {
            TabCommand::Open { table, .. } => Ok(vec![TabEvent::Opened { table }]),
            TabCommand::Order { .. } if !self.open => Err(TabError::NotOpen),
            TabCommand::Order { drink } => match bar.price(&drink).await {
                Some(price) => Ok(vec![TabEvent::DrinkOrdered { drink, price }]),
                None => Err(TabError::NotServed(drink)),
            },
        }
    }
}

// ---- the fixture -----------------------------------------------------------------------

fn opened() -> TabEvent {
    TabEvent::Opened { table: 3 }
}

#[test]
fn the_fixture_takes_mocked_services_and_variants_without_into() {
    let tab = given::<Tab>([opened()])
        .with(Bar::default())
        .when(TabCommand::Order {
            drink: "tea".into(),
        })
        .then([TabEvent::DrinkOrdered {
            drink: "tea".into(),
            price: 4,
        }]);
    assert_eq!(tab.due, 4);
    // The error type has no `PartialEq`: its message is asserted.
    given_no_events::<Tab>()
        .with(Bar::default())
        .when(TabCommand::Order {
            drink: "tea".into(),
        })
        .then_error_message("the tab is not open");
    let when = given::<Tab>([opened()])
        .with(Bar::default())
        .when(TabCommand::Order {
            drink: "absinthe".into(),
        });
    assert!(matches!(when.result(), Err(TabError::NotServed(d)) if d == "absinthe"));
}

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("the assertion must fail");
    payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_mismatch_prints_what_was_expected_and_what_happened() {
    let message = panic_message(|| {
        given::<Tab>([opened()])
            .with(Bar::default())
            .when(TabCommand::Order {
                drink: "tea".into(),
            })
            .then([TabEvent::Closed]);
    });
    assert!(message.contains("expected: [Closed]"), "{message}");
    assert!(
        message.contains(r#"actual: [DrinkOrdered { drink: "tea", price: 4 }]"#),
        "{message}"
    );
    let message = panic_message(|| {
        given_no_events::<Tab>()
            .with(Bar::default())
            .when(TabCommand::Order {
                drink: "tea".into(),
            })
            .then_error_message("we do not serve tea");
    });
    assert!(
        message.contains(r#"expected: "we do not serve tea""#)
            && message.contains(r#"actual: "the tab is not open""#),
        "{message}"
    );
}

// ---- the event set ---------------------------------------------------------------------

static SEEN: Mutex<Vec<(&'static str, u32, String)>> = Mutex::new(Vec::new());
static USERS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// One handler for every event of the aggregate: it takes the set's enum. (Two tests feed it:
/// events sent with a user id go to `USERS`, the others to `SEEN`.)
#[event_handler]
fn tab_history(event: &TabEvent, meta: Meta) {
    match meta.field("user_id") {
        Some(user) => USERS.lock().unwrap().push(user.to_owned()),
        None => {
            SEEN.lock()
                .unwrap()
                .push((meta.event_name(), meta.version(), format!("{event:?}")))
        }
    }
}

#[tokio::test]
async fn each_variant_is_stored_under_its_own_name_and_version_and_reaches_the_sets_handler() {
    let store = MemoryStore::new();
    let repo = Repository::<Tab, _>::new(store.clone());
    let committed = repo
        .append(
            "t-9",
            0,
            vec![
                opened(),
                TabEvent::DrinkOrdered {
                    drink: "tea".into(),
                    price: 4,
                },
                TabEvent::Paid(4),
                TabEvent::Closed,
            ],
            EventMetadata::default(),
        )
        .await
        .unwrap();
    let stored: Vec<_> = committed
        .events
        .iter()
        .map(|(_, s)| (s.name.as_str(), s.version, s.payload.clone()))
        .collect();
    assert_eq!(
        stored,
        [
            ("Opened", 1, serde_json::json!({ "table": 3 })),
            (
                "tab.drink_ordered",
                2,
                serde_json::json!({ "drink": "tea", "price": 4 })
            ),
            ("Paid", 1, serde_json::json!(4)),
            ("Closed", 1, serde_json::Value::Null),
        ]
    );
    let (tab, version) = repo.load("t-9").await.unwrap();
    assert_eq!((tab.open, tab.due, version), (false, 0, 4));

    let bus = Bus::builder()
        .event_store(store)
        .resource(Bar::default())
        .build()
        .unwrap();
    SEEN.lock().unwrap().clear();
    let reports = committed.dispatch(&bus).await;
    assert!(reports.iter().all(|r| r.ran() == 1));
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|(n, v, _)| (*n, *v)).collect::<Vec<_>>(),
        [
            ("Opened", 1),
            ("tab.drink_ordered", 2),
            ("Paid", 1),
            ("Closed", 1)
        ]
    );
    assert_eq!(seen[1].2, r#"DrinkOrdered { drink: "tea", price: 4 }"#);
}

// ---- routing ---------------------------------------------------------------------------

/// A bus whose routed commands use `store` and `bar`.
fn bus_over(store: &MemoryStore, bar: Bar) -> Bus {
    Bus::builder()
        .event_store(store.clone())
        .resource(bar)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_command_is_routed_to_its_aggregate_by_its_id_field_or_the_send_call() {
    let store = MemoryStore::new();
    let bus = bus_over(&store, Bar::default());
    // `TabCommand::Order` carries no id: the enum goes with `send_to` (`send` does not compile).
    let open = TabCommand::Open {
        tab: "t-1".into(),
        table: 3,
    };
    assert_eq!(bus.send_to("t-1", open).await.unwrap(), 1);
    let order = || TabCommand::Order {
        drink: "tea".into(),
    };
    assert_eq!(bus.send_to("t-1", order()).await.unwrap(), 2);
    // The aggregate's refusal keeps its own message, and is what `rejected()` gives.
    let err = bus
        .send_to(
            "t-1",
            TabCommand::Order {
                drink: "absinthe".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "command rejected: we do not serve absinthe"
    );
    assert!(matches!(err.rejected(), Some(TabError::NotServed(d)) if d == "absinthe"));
    assert!(matches!(err.into_rejected(), Some(TabError::NotServed(_))));
    // A command with its id field goes with `send`.
    let close = CloseTab { tab: "t-1".into() };
    assert_eq!(bus.send(close.clone()).await.unwrap(), 3);
    let err = bus.send(close).await.unwrap_err();
    assert!(matches!(err.rejected(), Some(TabError::NotOpen)), "{err}");
    assert_eq!(store.len(), 3);
}

/// Opens the tab `t-1` on `bus`.
async fn open_tab(bus: &Bus) {
    let open = TabCommand::Open {
        tab: "t-1".into(),
        table: 1,
    };
    bus.send_to("t-1", open).await.unwrap();
}

#[tokio::test]
async fn a_routed_command_that_loses_the_append_race_fails_with_the_conflict_and_runs_once() {
    let store = MemoryStore::new();
    let bar = Bar {
        interfere: Some(store.clone()),
        ..Bar::default()
    };
    let bus = bus_over(&store, bar);
    open_tab(&bus).await;
    let order = TabCommand::Order {
        drink: "tea".into(),
    };
    let err = bus.send_to("t-1", order).await.unwrap_err();
    // The service (an ATM, a price list) ran once: the command is not run again.
    let asked = bus.resource::<Bar>().unwrap().asked.load(Ordering::SeqCst);
    assert_eq!(asked, 1);
    assert!(
        matches!(
            &err,
            SendError::Conflict { aggregate_type, aggregate_id, expected: 1, actual: 2 }
                if aggregate_type == "Tab" && aggregate_id == "t-1"
        ),
        "{err:?}"
    );
    assert!(
        err.rejected().is_none(),
        "a conflict is not the aggregate's refusal"
    );
    assert_eq!(
        err.to_string(),
        "another writer appended to Tab `t-1` first (loaded at version 1, now at 2); nothing was written: send the command again, or let it re-run with `#[command(retry_on_conflict = N)]`"
    );
    // Opened and the interfering Paid: the order wrote nothing.
    let names: Vec<_> = store
        .read_all(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["Opened", "Paid"]);
}

#[tokio::test]
async fn a_routed_command_with_retry_on_conflict_runs_again_on_the_new_state() {
    let store = MemoryStore::new();
    let bar = Bar {
        interfere: Some(store.clone()),
        ..Bar::default()
    };
    let bus = bus_over(&store, bar);
    open_tab(&bus).await;
    let version = bus
        .send_to(
            "t-1",
            OrderAgain {
                drink: "tea".into(),
            },
        )
        .await
        .unwrap();
    // Opened, the interfering Paid, then the order decided again on top of it: the service
    // ran twice.
    assert_eq!(version, 3);
    let asked = bus.resource::<Bar>().unwrap().asked.load(Ordering::SeqCst);
    assert_eq!(asked, 2);
    let names: Vec<_> = store
        .read_all(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["Opened", "Paid", "tab.drink_ordered"]);
}

#[tokio::test]
async fn a_store_failure_is_not_the_aggregates_refusal() {
    let store = MemoryStore::new();
    // A stored event the aggregate cannot decode: loading fails in the store.
    let stream = StreamId {
        aggregate_type: "Tab",
        aggregate_id: "t-1",
    };
    let mut broken = TabEvent::Paid(1)
        .to_new_event(EventMetadata::default())
        .unwrap();
    broken.payload = serde_json::json!("not a number");
    store.append(stream.at(0), vec![broken]).await.unwrap();
    let bus = bus_over(&store, Bar::default());
    let err = bus.send(CloseTab { tab: "t-1".into() }).await.unwrap_err();
    assert!(err.rejected().is_none(), "{err}");
    let SendError::Store(source) = &err else {
        panic!("expected a store error, got {err:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<events::store::StoreError>(),
            Some(events::store::StoreError::Decode { .. })
        ),
        "{source:?}"
    );
    assert!(
        err.to_string().starts_with("the event store failed: "),
        "{err}"
    );
}

#[test]
fn a_bus_without_the_store_or_the_services_of_a_routed_command_does_not_start() {
    let err = Bus::builder().build().unwrap_err().to_string();
    assert!(
        err.contains("command `TabCommand` is routed to aggregate `Tab`, which needs an event store: call `Bus::builder().event_store(store)`"),
        "{err}"
    );
    assert!(
        err.contains("command `CloseTab` is routed to aggregate `Tab`, which needs an event store: call `Bus::builder().event_store(store)`"),
        "{err}"
    );
    assert!(!err.contains("SharedStore"), "no private path: {err}");
    assert!(err.contains("sourcing::Bar"), "{err}");
}

#[tokio::test]
async fn command_metadata_reaches_every_stored_event_and_the_handlers_meta() {
    let store = MemoryStore::new();
    let bus = bus_over(&store, Bar::default());
    let meta = events::command_meta::<TabCommand>()
        .with_field("user_id", "u-7")
        .with_field("tenant", "acme")
        .with_field("request_id", "r-1");
    let open = TabCommand::Open {
        tab: "t-5".into(),
        table: 2,
    };
    bus.send_to_with("t-5", open, meta.clone()).await.unwrap();
    let close = CloseTab { tab: "t-5".into() };
    bus.send_with(close, meta.clone()).await.unwrap();
    let stored = store.read_all(0, 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    for event in &stored {
        let fields: Vec<_> = event
            .metadata
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("request_id", "r-1"),
                ("tenant", "acme"),
                ("user_id", "u-7")
            ]
        );
        assert_eq!(event.metadata.causation_id, Some(meta.event_id()));
    }
    assert_eq!(*USERS.lock().unwrap(), ["u-7", "u-7"]);
}
