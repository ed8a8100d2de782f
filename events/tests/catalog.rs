//! Catalog lookups: every event and handler linked into this test binary, found by name, each
//! event with only its own handlers, in dispatch order; and a durable handler's retry policy.

use std::time::Duration;

use events::{catalog, event_handler, DomainEvent, HandlerKind, Meta, Publisher, Res};
use serde::{Deserialize, Serialize};

#[derive(DomainEvent, Serialize, Deserialize)]
#[event(name = "catalog.card_added", version = 3, aggregate = "Library", upcast = card_added_v2)]
struct CardAdded {
    #[event(aggregate_id)]
    library: u64,
}

fn card_added_v2(
    _: u32,
    payload: serde_json::Value,
) -> Result<serde_json::Value, events::BoxError> {
    Ok(payload)
}

#[derive(DomainEvent)]
#[event(name = "catalog.card_removed")]
struct CardRemoved;

#[derive(DomainEvent)]
struct Unhandled;

struct Search;

#[event_handler(name = "catalog.b_index", publishes(CardRemoved))]
fn index(_: &CardAdded, _search: Res<Search>, _publisher: Publisher) {}

#[event_handler(name = "catalog.a_audit")]
fn audit(_: &CardAdded, _meta: Meta) {}

#[event_handler(name = "catalog.z_first", order = -1)]
async fn first(_: &CardAdded) {}

#[event_handler(name = "catalog.mail", durable, max_attempts = 3, backoff_ms = 200)]
fn mail(_: &CardAdded) {}

#[event_handler(name = "catalog.removed")]
fn removed(_: &CardRemoved) {}

#[test]
fn events_are_found_by_name_with_what_the_derive_declared() {
    let catalog = catalog();
    let added = catalog
        .event("catalog.card_added")
        .expect("derived and linked");
    assert_eq!(
        (added.version(), added.aggregate_type()),
        (3, Some("Library"))
    );
    assert!(added.type_name().ends_with("CardAdded"));
    assert!(catalog.event("catalog.card_removed").is_some());
    // The default name is the type's name; an event without handlers is still listed.
    let unhandled = catalog.event("Unhandled").expect("listed without handlers");
    assert!(catalog.handlers_of(unhandled).is_empty());
    assert!(catalog.event("catalog.card_addedd").is_none());
    assert!(catalog.event("").is_none());
    let names: Vec<_> = catalog.events().iter().map(|e| e.name()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "events are sorted by name");
}

#[test]
fn each_event_lists_only_its_own_handlers_in_dispatch_order() {
    let catalog = catalog();
    let added = catalog.event("catalog.card_added").unwrap();
    let names: Vec<_> = catalog
        .handlers_of(added)
        .iter()
        .map(|h| h.name())
        .collect();
    // By `order`, then by name.
    assert_eq!(
        names,
        [
            "catalog.z_first",
            "catalog.a_audit",
            "catalog.b_index",
            "catalog.mail"
        ]
    );
    let removed = catalog.event("catalog.card_removed").unwrap();
    let names: Vec<_> = catalog
        .handlers_of(removed)
        .iter()
        .map(|h| h.name())
        .collect();
    assert_eq!(names, ["catalog.removed"]);
}

#[test]
fn handlers_are_found_by_name_with_their_kind_needs_and_place() {
    let catalog = catalog();
    let index = catalog.handler("catalog.b_index").unwrap();
    assert_eq!(index.event_name(), "catalog.card_added");
    assert_eq!(index.kind(), HandlerKind::Sync);
    assert_eq!(index.publishes(), ["catalog.card_removed"]);
    let resources: Vec<_> = index.resources().collect();
    assert_eq!(resources.len(), 1);
    assert!(resources[0].ends_with("Search"), "{resources:?}");
    assert!(index.retry_policy().is_none(), "not durable");
    let location = index.location();
    assert!(location.file().ends_with("catalog.rs"));
    assert!(location.module_path().ends_with("catalog"));
    assert_eq!(location.line(), line_of("fn index("));
    assert_eq!(
        catalog.handler("catalog.z_first").unwrap().kind(),
        HandlerKind::Async
    );
    assert_eq!(catalog.handler("catalog.z_first").unwrap().order(), -1);
    assert!(catalog.handler("catalog.nope").is_none());
}

#[test]
fn a_durable_handler_has_its_retry_policy_and_exponential_back_off() {
    let mail = catalog().handler("catalog.mail").unwrap();
    assert_eq!(mail.kind(), HandlerKind::Durable);
    assert!(!mail.is_batch());
    let retry = mail.retry_policy().unwrap();
    assert_eq!((retry.max_attempts, retry.backoff_ms), (3, 200));
    // Attempt n (from 1) waits backoff * 2^(n-1), capped at five minutes.
    assert_eq!(retry.backoff(0), Duration::from_millis(200));
    assert_eq!(retry.backoff(1), Duration::from_millis(200));
    assert_eq!(retry.backoff(2), Duration::from_millis(400));
    assert_eq!(retry.backoff(4), Duration::from_millis(1_600));
    assert_eq!(retry.backoff(12), Duration::from_secs(300));
    assert_eq!(retry.backoff(u32::MAX), Duration::from_secs(300));
}

/// The line of this file holding `needle` (from 1).
fn line_of(needle: &str) -> u32 {
    let source = include_str!("catalog.rs");
    let index = source.lines().position(|l| l.contains(needle)).unwrap();
    index as u32 + 1
}
