//! The shipping service: any events CLI command, above all
//! `process --all --source nats://HOST:PORT|redis://HOST:PORT --stream ORDERS --consumer shipping`.
//! Store: `$SHIPPING_DB`.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Mutex;

use distributed::{init_logs, open_store, OrderPlaced};
use events::{event_handler, Bus, Meta};

/// Orders the carrier already refused once: it is busy on the first call for every fourth
/// order (a transient failure: the retry goes through).
static REFUSED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

/// Schedules the delivery of an order. Addresses the carrier does not serve fail for good: after
/// two attempts they are dead letters in the shipping store, and that order's later events wait.
#[event_handler(
    durable,
    name = "shipping.schedule_delivery",
    max_attempts = 2,
    backoff_ms = 20
)]
fn schedule_delivery(e: &OrderPlaced, meta: Meta) -> Result<(), String> {
    if e.address == "Atlantis" {
        return Err(format!(
            "no carrier delivers to {} (order {})",
            e.address, e.order
        ));
    }
    if e.order % 4 == 1
        && REFUSED
            .lock()
            .unwrap()
            .get_or_insert_default()
            .insert(e.order)
    {
        return Err(format!("carrier busy for order {}; try again", e.order));
    }
    println!(
        "shipping: delivery of order {} to {} scheduled ({})",
        e.order,
        e.address,
        meta.event_id()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logs();
    let (_, store) = open_store("SHIPPING_DB");
    let bus = Bus::builder().build().expect("no resources to check");
    events::cli::run(&bus, &store).await
}
