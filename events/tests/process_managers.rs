#![cfg(feature = "sqlite")]
//! Process managers (issue 23): an order's events start a fulfilment whose command opens a
//! shipment (another aggregate); the shipment's delivery closes the order; its close completes
//! the instance. On SQLite and on PostgreSQL with 4 segments: state and commands commit with
//! the checkpoint, every command takes effect once, and two instances never share state.

use std::sync::Arc;

use events::process::Reaction;
use events::sourcing::{EventSourced, Handle, ViewRepository};
use events::store::durable::DurableStore;
use events::store::EventMetadata;
use events::worker::Worker;
use events::{process_manager, Bus, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

#[path = "support/backends.rs"]
mod backends;
use backends::backends;

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "pm.order_placed", aggregate = "Order")]
struct OrderPlaced {
    #[event(aggregate_id)]
    order: String,
    items: u32,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "pm.order_closed", aggregate = "Order")]
struct OrderClosed {
    #[event(aggregate_id)]
    order: String,
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "pm.shipment_delivered", aggregate = "Shipment")]
struct ShipmentDelivered {
    #[event(aggregate_id)]
    shipment: String,
    order: String,
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    enum OrderEvent {
        Placed(OrderPlaced),
        Closed(OrderClosed),
    }
}

#[derive(Default)]
struct Order {
    closed: bool,
}

impl EventSourced for Order {
    const TYPE: &'static str = "Order";
    type Event = OrderEvent;
    fn apply(&mut self, e: &OrderEvent) {
        if let OrderEvent::Closed(_) = e {
            self.closed = true;
        }
    }
}

#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "pm.shipment_opened", aggregate = "Shipment")]
struct ShipmentOpened {
    #[event(aggregate_id)]
    shipment: String,
    order: String,
    items: u32,
}

events::event_set! {
    #[derive(Debug, Clone, PartialEq)]
    enum ShipmentEvent {
        Opened(ShipmentOpened),
        Delivered(ShipmentDelivered),
    }
}

#[derive(Default)]
struct Shipment;

impl EventSourced for Shipment {
    const TYPE: &'static str = "Shipment";
    type Event = ShipmentEvent;
    fn apply(&mut self, _: &ShipmentEvent) {}
}

/// Opens the shipment of an order: a command of another aggregate.
#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Shipment)]
struct OpenShipment {
    #[command(id)]
    shipment: String,
    order: String,
    items: u32,
}

impl Handle<OpenShipment> for Shipment {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: OpenShipment, _: &()) -> Result<Vec<ShipmentEvent>, String> {
        Ok(vec![ShipmentEvent::Opened(ShipmentOpened {
            shipment: c.shipment,
            order: c.order,
            items: c.items,
        })])
    }
}

#[derive(Command, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(aggregate = Order)]
struct CloseOrder {
    #[command(id)]
    order: String,
}

impl Handle<CloseOrder> for Order {
    type Error = String;
    type Services = ();
    async fn handle(&self, c: CloseOrder, _: &()) -> Result<Vec<OrderEvent>, String> {
        if self.closed {
            return Err(format!("order {} is closed already", c.order));
        }
        Ok(vec![OrderEvent::Closed(OrderClosed { order: c.order })])
    }
}

/// The fulfilment of one order.
#[derive(Default, Serialize, Deserialize, Debug, PartialEq)]
struct Fulfilment {
    items: u32,
    delivered: bool,
    steps: Vec<String>,
}

#[process_manager(name = "pm.fulfilment", association = order, sends(OpenShipment, CloseOrder))]
impl Fulfilment {
    #[start]
    fn placed(&mut self, e: &OrderPlaced, out: &mut Reaction<Self>) {
        self.items = e.items;
        self.steps.push("placed".into());
        out.send(OpenShipment {
            shipment: format!("s-{}", e.order),
            order: e.order.clone(),
            items: e.items,
        });
    }

    async fn delivered(&mut self, e: &ShipmentDelivered, out: &mut Reaction<Self>) {
        self.delivered = true;
        self.steps.push("delivered".into());
        out.send(CloseOrder {
            order: e.order.clone(),
        });
    }

    #[complete]
    fn closed(&mut self, _: &OrderClosed) {
        self.steps.push("closed".into());
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
struct StoredInstance {
    completed: bool,
    state: Option<Fulfilment>,
}

impl events::sourcing::View for StoredInstance {
    const NAME: &'static str = "process:pm.fulfilment";
}

async fn drain(bus: &Bus, store: &Arc<dyn DurableStore>) {
    Worker::new(bus, store)
        .handlers(["pm.fulfilment"])
        .drain()
        .await
        .expect("the worker drains");
}

async fn names(store: &Arc<dyn DurableStore>, aggregate: (&str, &str)) -> Vec<String> {
    let query = events::store::durable::LogQuery {
        aggregate: Some((aggregate.0.into(), aggregate.1.into())),
        ..Default::default()
    };
    store
        .query_log(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[tokio::test]
async fn a_process_manager_drives_another_aggregate_and_completes_once_per_instance() {
    for store in backends("pm_flow").await {
        let bus = Bus::builder().event_store(store.clone()).build().unwrap();
        for (order, items) in [("o-1", 2), ("o-2", 5)] {
            store
                .append_event(
                    &OrderPlaced {
                        order: order.into(),
                        items,
                    },
                    EventMetadata::default(),
                )
                .await
                .unwrap();
        }
        drain(&bus, &store).await;
        // Each order's command opened its own shipment, once.
        for order in ["o-1", "o-2"] {
            let shipment = format!("s-{order}");
            assert_eq!(
                names(&store, ("Shipment", &shipment)).await,
                ["pm.shipment_opened"]
            );
        }
        let opened = store
            .query_log(&events::store::durable::LogQuery {
                name: Some("pm.shipment_opened".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let placed = store
            .query_log(&events::store::durable::LogQuery {
                name: Some("pm.order_placed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        // The command's effect carries the causing event's correlation and a derived id.
        let expected_id = events::process::command_id(placed[0].event_id, "placed", 0);
        assert_eq!(opened[0].metadata.causation_id, Some(expected_id));
        assert_eq!(opened[0].metadata.correlation_id, Some(placed[0].event_id));

        // The shipment of o-1 is delivered: the instance sends CloseOrder, then completes.
        store
            .append_event(
                &ShipmentDelivered {
                    shipment: "s-o-1".into(),
                    order: "o-1".into(),
                },
                EventMetadata::default(),
            )
            .await
            .unwrap();
        drain(&bus, &store).await;
        drain(&bus, &store).await;
        assert_eq!(
            names(&store, ("Order", "o-1")).await,
            ["pm.order_placed", "pm.order_closed"]
        );
        assert_eq!(names(&store, ("Order", "o-2")).await, ["pm.order_placed"]);
        let states = ViewRepository::<StoredInstance>::new(&store);
        let (one, _) = states.load("o-1").await.unwrap().expect("stored");
        assert!(one.completed);
        assert_eq!(
            one.state.unwrap().steps,
            ["placed", "delivered", "closed"],
            "one instance's events in order, from two aggregates"
        );
        let (two, _) = states.load("o-2").await.unwrap().expect("stored");
        assert_eq!(
            two.state,
            Some(Fulfilment {
                items: 5,
                delivered: false,
                steps: vec!["placed".into()],
            }),
            "two instances never share state"
        );
        assert!(store
            .list_views("commands:pm.fulfilment", 10)
            .await
            .unwrap()
            .is_empty());
        #[cfg(feature = "cli")]
        log_shows_the_commands_of_the_flow(&bus, &store, placed[0].event_id).await;
    }
}

/// `log --correlation` tells the flow cause first, with each process manager's command in it.
#[cfg(feature = "cli")]
async fn log_shows_the_commands_of_the_flow(
    bus: &Bus,
    store: &Arc<dyn DurableStore>,
    flow: uuid::Uuid,
) {
    let mut out = Vec::new();
    let args = ["app", "log", "--correlation", &flow.to_string(), "--json"];
    events::cli::run_with(bus, store.clone(), args, &mut out)
        .await
        .unwrap();
    let log: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let events = log["events"].as_array().unwrap();
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pm.order_placed", "pm.shipment_opened"], "{log}");
    let command = &events[1]["command"];
    assert_eq!(command["process"], "pm.fulfilment", "{log}");
    assert_eq!(command["reaction"], "placed", "{log}");
    assert_eq!(command["cause"], flow.to_string(), "{log}");
}

#[tokio::test]
async fn a_stored_command_that_already_took_effect_is_not_sent_again() {
    for store in backends("pm_once").await {
        let bus = Bus::builder().event_store(store.clone()).build().unwrap();
        store
            .append_event(
                &OrderPlaced {
                    order: "o-9".into(),
                    items: 1,
                },
                EventMetadata::default(),
            )
            .await
            .unwrap();
        drain(&bus, &store).await;
        assert_eq!(
            names(&store, ("Shipment", "s-o-9")).await,
            ["pm.shipment_opened"]
        );
        // A crash after the command took effect and before its row was deleted: the row is
        // back in the outbox, as the state commit left it.
        let placed = store
            .query_log(&events::store::durable::LogQuery {
                name: Some("pm.order_placed".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let row = events::process::StoredCommand {
            id: events::process::command_id(placed[0].event_id, "placed", 0),
            command: "OpenShipment".into(),
            payload: serde_json::json!({"shipment": "s-o-9", "order": "o-9", "items": 1}),
            process: "pm.fulfilment".into(),
            instance: "o-9".into(),
            correlation_id: placed[0].event_id,
            caused_by: placed[0].event_id,
            fields: Default::default(),
        };
        store
            .save_view(
                "commands:pm.fulfilment",
                "again",
                &serde_json::to_value(&row).unwrap(),
                1,
            )
            .await
            .unwrap();
        drain(&bus, &store).await;
        assert_eq!(
            names(&store, ("Shipment", "s-o-9")).await,
            ["pm.shipment_opened"],
            "sent once by effect"
        );
        assert!(store
            .list_views("commands:pm.fulfilment", 10)
            .await
            .unwrap()
            .is_empty());
    }
}

#[cfg(feature = "cli")]
#[test]
fn the_graph_draws_the_process_manager_with_its_events_and_commands() {
    let graph = events::cli::graph();
    for line in [
        "    p_pm_fulfilment{{\"pm.fulfilment (process manager)\"}}",
        "    e_pm_order_placed -- starts --> p_pm_fulfilment",
        "    e_pm_shipment_delivered --> p_pm_fulfilment",
        "    e_pm_order_closed -- completes --> p_pm_fulfilment",
        "    p_pm_fulfilment -- sends --> c_OpenShipment",
        "    p_pm_fulfilment -- sends --> c_CloseOrder",
    ] {
        assert!(graph.lines().any(|l| l == line), "{line}\n{graph}");
    }
    assert!(
        !graph.contains("pm.fulfilment (durable)"),
        "drawn once, as the process manager\n{graph}"
    );
}

/// An event that only a process manager handles is stored when the application publishes it,
/// as for a durable handler of its own: the process manager reacts to it.
#[tokio::test]
async fn an_event_only_a_process_manager_handles_is_stored_when_published() {
    for store in backends("pm_published").await {
        let bus = Bus::builder()
            .store(store.clone())
            .event_store(store.clone())
            .build()
            .unwrap();
        let report = bus
            .dispatch(&OrderPlaced {
                order: "o-9".into(),
                items: 1,
            })
            .await
            .expect("stored for the process manager");
        assert!(report.is_ok(), "{report}");
        // A sync publish cannot store it: it says so instead of dropping it.
        let refused = bus.publish(&OrderPlaced {
            order: "o-10".into(),
            items: 1,
        });
        assert!(refused.is_err());
        drain(&bus, &store).await;
        assert_eq!(
            names(&store, ("Shipment", "s-o-9")).await,
            ["pm.shipment_opened"]
        );
    }
}

/// A stored command that cannot be sent (here: its payload no longer decodes) is tried again
/// after a back-off that doubles (250 ms, 500 ms, 1 s, ..), not on every poll: over two seconds
/// of 20 ms polls, a handful of attempts instead of a hundred, each counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_is_sent_again_after_a_back_off_not_on_every_poll() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The only recorder of this binary; the counter below is this test's own outbox row.
    metrics::set_global_recorder(recorder).expect("no other recorder in this binary");
    let store = backends("pm_backoff").await.remove(0);
    let bus = Bus::builder().event_store(store.clone()).build().unwrap();
    let row = events::process::StoredCommand {
        id: uuid::Uuid::now_v7(),
        command: "OpenShipment".into(),
        payload: serde_json::json!({"shipment": 5}),
        process: "pm.fulfilment".into(),
        instance: "o-bad".into(),
        correlation_id: uuid::Uuid::now_v7(),
        caused_by: uuid::Uuid::now_v7(),
        fields: Default::default(),
    };
    let body = serde_json::to_value(&row).unwrap();
    store
        .save_view("commands:pm.fulfilment", "bad", &body, 1)
        .await
        .unwrap();
    Worker::new(&bus, &store)
        .handlers(["pm.fulfilment"])
        .poll_interval(std::time::Duration::from_millis(20))
        .max_runtime(std::time::Duration::from_secs(2))
        .run()
        .await
        .expect("the worker runs");
    let attempts = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, ..)| key.key().name() == "events_process_commands_failed_total")
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            other => panic!("{other:?}"),
        })
        .expect("the failures are counted");
    assert!(
        (2..=6).contains(&attempts),
        "{attempts} attempts in 2 s: a back-off allows about 4"
    );
    assert_eq!(
        store
            .list_views("commands:pm.fulfilment", 10)
            .await
            .unwrap()
            .len(),
        1,
        "the command stays in the outbox"
    );
}
