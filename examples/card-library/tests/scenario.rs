//! The card library scenario: raised events, dispatch after save, injected services, a failing
//! handler that does not fail the operation, idempotent handlers.

use card_library::{
    services, Analytics, CardAddedToLibrary, CardRemovedFromLibrary, CollectionCreated, Library,
    LibraryError, LibraryRepository, LibraryService, Notifications, SearchIndex,
};
use events::{AggregateRoot, Bus};

/// The bus and the service on a fresh SQLite store in memory.
async fn app() -> (Bus, LibraryService) {
    let store = events::store::connect("sqlite::memory:").await.unwrap();
    let bus = services(&store).unwrap();
    (bus.clone(), LibraryService::new(bus, store))
}

#[test]
fn the_aggregate_records_its_events_typed_and_in_order() {
    // "Clear handlers and assert raised events": no bus at all, only the aggregate.
    let mut library = Library::new(7);
    library.add_card(1, "Mox Pearl").unwrap();
    library.create_collection("Power").unwrap();
    library.remove_card(1).unwrap();
    assert_eq!(
        library.add_card(2, "x").and(library.add_card(2, "x")),
        Err(LibraryError::AlreadyThere(2))
    );

    let raised = library.take_events();
    assert_eq!(
        raised.names(),
        [
            "library.card_added",
            "library.collection_created",
            "library.card_removed",
            "library.card_added"
        ]
    );
    assert_eq!(
        raised.get::<CardAddedToLibrary>(0),
        Some(&CardAddedToLibrary {
            library_id: 7,
            card_id: 1,
            name: "Mox Pearl".into()
        })
    );
    assert_eq!(raised.of::<CollectionCreated>()[0].collection, "Power");
    assert_eq!(raised.of::<CardRemovedFromLibrary>().len(), 1);
    assert!(library.take_events().is_empty());
}

#[tokio::test]
async fn events_are_dispatched_after_the_save_to_every_handler() {
    let (bus, service) = app().await;
    let reports = service
        .change(1, |l| {
            l.add_card(10, "Black Lotus")?;
            l.create_collection("Vintage")
        })
        .await
        .unwrap();
    assert!(reports.iter().all(|r| r.is_ok()));
    assert_eq!(reports.iter().map(|r| r.ran()).sum::<usize>(), 2 + 2);

    assert_eq!(bus.resource::<Analytics>().unwrap().cards_added(), 1);
    assert_eq!(
        bus.resource::<SearchIndex>().unwrap().search("lotus"),
        ["Black Lotus"]
    );
    assert_eq!(
        bus.resource::<Notifications>().unwrap().sent(),
        ["library 1: new collection `Vintage`"]
    );

    service.change(1, |l| l.remove_card(10)).await.unwrap();
    assert!(bus
        .resource::<SearchIndex>()
        .unwrap()
        .search("lotus")
        .is_empty());
    let repo = bus.resource::<LibraryRepository>().unwrap();
    let (library, version) = repo.load(1).await.unwrap();
    assert_eq!(library.cards.len(), 0);
    assert_eq!(version, Some(2), "saved twice");
}

#[tokio::test]
async fn nothing_is_dispatched_when_the_save_fails() {
    let (bus, service) = app().await;
    let repo = bus.resource::<LibraryRepository>().unwrap();
    repo.fail_saves(true);
    let err = service
        .change(1, |l| l.add_card(10, "Black Lotus"))
        .await
        .unwrap_err();
    assert!(matches!(err, LibraryError::Save(_)));
    assert_eq!(bus.resource::<Analytics>().unwrap().cards_added(), 0);
    assert!(bus
        .resource::<SearchIndex>()
        .unwrap()
        .search("lotus")
        .is_empty());

    // Nor when the domain refuses the change.
    repo.fail_saves(false);
    service
        .change(1, |l| l.add_card(10, "Black Lotus"))
        .await
        .unwrap();
    let err = service
        .change(1, |l| l.add_card(10, "Black Lotus"))
        .await
        .unwrap_err();
    assert_eq!(err, LibraryError::AlreadyThere(10));
    assert_eq!(bus.resource::<Analytics>().unwrap().cards_added(), 1);
}

#[tokio::test]
async fn a_failing_handler_does_not_fail_the_operation() {
    let (bus, service) = app().await;
    bus.resource::<Notifications>().unwrap().set_down(true);
    let reports = service
        .change(3, |l| l.create_collection("Cube"))
        .await
        .unwrap();
    let failures: Vec<_> = reports.iter().flat_map(|r| r.failures()).collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].handler(), "library.notify.collection_created");
    assert_eq!(
        failures[0].to_string(),
        "handler `library.notify.collection_created` failed: notification service unavailable"
    );
    // The other handler of the same event ran, and the library was saved.
    assert_eq!(
        bus.resource::<Analytics>().unwrap().collections_created(),
        1
    );
    let repo = bus.resource::<LibraryRepository>().unwrap();
    assert!(repo.load(3).await.unwrap().0.collections.contains("Cube"));
}

#[tokio::test]
async fn handlers_are_idempotent() {
    let (bus, _) = app().await;
    let mut library = Library::new(5);
    library.add_card(1, "Time Walk").unwrap();
    library.create_collection("Power").unwrap();
    let events = library.take_events();
    // Delivered twice (a retry, a redelivery): the read side is the same as after once.
    events.dispatch(&bus).await.unwrap();
    events.dispatch(&bus).await.unwrap();
    assert_eq!(bus.resource::<Analytics>().unwrap().cards_added(), 1);
    assert_eq!(
        bus.resource::<Analytics>().unwrap().collections_created(),
        1
    );
    assert_eq!(
        bus.resource::<SearchIndex>().unwrap().search("walk"),
        ["Time Walk"]
    );
    assert_eq!(bus.resource::<Notifications>().unwrap().sent().len(), 1);
}
