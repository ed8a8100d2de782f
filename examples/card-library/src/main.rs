//! Runs the card library: adds cards, creates collections, removes a card; shows that a failed
//! save dispatches nothing and that a failing notification does not fail the operation; then a
//! worker delivers the stored events to the durable audit log.
//!
//! The store: `EVENTS_DATABASE_URL` (`postgres://..` with the `postgres` feature), or SQLite in
//! memory.

use card_library::{
    database_url, services, Analytics, AuditLog, LibraryService, Notifications, SearchIndex,
};
use events::worker::Worker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .init();

    let store = events::store::connect(&database_url()).await?;
    store.migrate().await?;
    let bus = services(&store)?;
    let library = LibraryService::new(bus.clone(), store.clone());

    library
        .change(1, |l| {
            l.add_card(10, "Black Lotus")?;
            l.add_card(11, "Lotus Petal")?;
            l.create_collection("Vintage")
        })
        .await?;
    library.change(1, |l| l.remove_card(11)).await?;

    // The notification service is down: the operation succeeds, the report says why.
    bus.resource::<Notifications>().unwrap().set_down(true);
    let reports = library.change(1, |l| l.create_collection("Cube")).await?;
    for report in reports.iter().filter(|r| !r.is_ok()) {
        println!("reported, not failed: {report}");
    }
    bus.resource::<Notifications>().unwrap().set_down(false);

    // A rule violation: nothing is saved, nothing dispatched.
    if let Err(e) = library.change(1, |l| l.add_card(10, "Black Lotus")).await {
        println!("refused: {e}");
    }

    let analytics = bus.resource::<Analytics>().unwrap();
    println!(
        "analytics: {} cards added, {} collections created",
        analytics.cards_added(),
        analytics.collections_created()
    );
    let found = bus.resource::<SearchIndex>().unwrap().search("lotus");
    println!("search `lotus`: {}", found.join(", "));
    println!("notifications sent:");
    for message in bus.resource::<Notifications>().unwrap().sent() {
        println!("  {message}");
    }
    Worker::new(&bus, &store).drain().await?;
    println!("audit log (delivered by a worker from the store):");
    for entry in bus.resource::<AuditLog>().unwrap().entries() {
        println!("  {entry}");
    }
    Ok(())
}
