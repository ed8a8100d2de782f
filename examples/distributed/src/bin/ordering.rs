//! The ordering service: `ordering place-orders N`, then any events CLI command
//! (`relay --to URL --stream ORDERS --subject-prefix orders`, `process --all`, `status`, ...).
//! Store: PostgreSQL at `$ORDERING_URL`, schema `$ORDERING_SCHEMA` (default `ordering`).

use std::process::ExitCode;

use distributed::{init_logs, open_ordering_store, OrderPlaced};
use events::store::PostgresStore;
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
/// and its event commit together, through the transactional outbox.
async fn place_orders(store: &PostgresStore, count: u64) -> Result<(), BoxError> {
    store.migrate().await?;
    let client = store.client().await?;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, customer text NOT NULL, address text NOT NULL)")
        .await?;
    let first = client
        .query_one("SELECT COALESCE(MAX(id), 0) FROM orders", &[])
        .await?
        .get::<_, i64>(0) as u64;
    drop(client);
    let bus = Bus::builder().store(store.clone()).build()?;
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
        store
            .outbox(&bus, async |tx, outbox| {
                tx.execute(
                    "INSERT INTO orders (id, customer, address) VALUES ($1, $2, $3)",
                    &[&(order as i64), &e.customer, &e.address],
                )
                .await?;
                outbox.publish(e);
                Ok::<_, BoxError>(())
            })
            .await?;
    }
    println!("ordering: {count} orders placed");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logs();
    let store = open_ordering_store().await;
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("place-orders") {
        let Some(count) = args.get(2).and_then(|n| n.parse().ok()) else {
            eprintln!("usage: ordering place-orders COUNT");
            return ExitCode::from(2);
        };
        return match place_orders(&store, count).await {
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
