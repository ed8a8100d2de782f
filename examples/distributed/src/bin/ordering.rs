//! The ordering service: `ordering place-orders N`, then any events CLI command
//! (`relay --nats URL --stream ORDERS --subject-prefix orders`, `process --all`, `status`, ...).
//! Store: `$ORDERING_DB`.

use std::process::ExitCode;

use distributed::{init_logs, open_store, OrderPlaced};
use events::store::{EventMetadata, NewEvent, SqliteStore, StreamId};
use events::{event_handler, BoxError, Bus, Meta};

/// The ordering service's own durable handler: runs from its own log, as always.
#[event_handler(durable, name = "ordering.send_receipt")]
fn send_receipt(e: &OrderPlaced, meta: Meta) {
    println!(
        "ordering: receipt for order {} sent to {} ({})",
        e.order,
        e.customer,
        meta.event_id()
    );
}

/// Places `count` orders; every fifth goes to an address shipping cannot serve. Each order row
/// and its event commit together.
fn place_orders(store: &SqliteStore, count: u64) -> Result<(), BoxError> {
    store.transaction(|tx| {
        tx.execute_batch("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, address TEXT NOT NULL)")?;
        Ok::<_, BoxError>(())
    })?;
    let first: u64 = store.transaction(|tx| {
        Ok::<_, BoxError>(
            tx.query_row("SELECT COALESCE(MAX(id), 0) FROM orders", [], |r| {
                r.get::<_, i64>(0)
            })? as u64,
        )
    })?;
    for order in first + 1..=first + count {
        let e = OrderPlaced {
            order,
            customer: format!("customer-{}", order % 3),
            address: if order % 5 == 0 {
                "Atlantis".into()
            } else {
                format!("{order} Main St")
            },
        };
        let id = order.to_string();
        let stream = StreamId {
            aggregate_type: "Order",
            aggregate_id: &id,
        };
        store.transaction(|tx| {
            tx.execute(
                "INSERT INTO orders (id, customer, address) VALUES (?1, ?2, ?3)",
                (order as i64, &e.customer, &e.address),
            )?;
            SqliteStore::append_in(
                tx,
                stream,
                0,
                vec![NewEvent::new(&e, EventMetadata::default())?],
            )?;
            Ok::<_, BoxError>(())
        })?;
    }
    println!("ordering: {count} orders placed");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logs();
    let (_, store) = open_store("ORDERING_DB");
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("place-orders") {
        let Some(count) = args.get(2).and_then(|n| n.parse().ok()) else {
            eprintln!("usage: ordering place-orders COUNT");
            return ExitCode::from(2);
        };
        return match place_orders(&store, count) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let bus = Bus::builder().build().expect("no resources to check");
    events::cli::run(&bus, &store).await
}
