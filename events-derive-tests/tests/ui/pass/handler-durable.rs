use events::{event_handler, DomainEvent, Meta, Res};
use serde::{Deserialize, Serialize};

fn card_added_v1(_: u32, mut payload: serde_json::Value) -> Result<serde_json::Value, events::BoxError> {
    payload["card"] = payload["name"].take();
    Ok(payload)
}

#[derive(DomainEvent, Serialize, Deserialize)]
#[event(name = "cards.card_added", version = 2, upcast = card_added_v1)]
struct CardAdded {
    card: String,
}

struct Index;

#[event_handler(durable, name = "cards.index")]
fn index(e: &CardAdded, _index: Res<Index>, meta: Meta) {
    let _ = (&e.card, meta.event_id());
}

#[event_handler(durable, name = "cards.notify", max_attempts = 8, backoff_ms = 250)]
async fn notify(e: &CardAdded) -> Result<(), std::io::Error> {
    let _ = &e.card;
    Ok(())
}

#[event_handler(durable, name = "cards.index_all")]
async fn index_all(cards: &[CardAdded], _index: Res<Index>) -> Result<(), String> {
    let _ = cards.len();
    Ok(())
}

fn main() {
    assert!(events::catalog().handler("cards.index_all").unwrap().is_batch());
    let catalog = events::catalog();
    let notify = catalog.handler("cards.notify").unwrap();
    assert_eq!(notify.kind(), events::HandlerKind::Durable);
    let retry = notify.retry_policy().unwrap();
    assert_eq!((retry.max_attempts, retry.backoff_ms), (8, 250));
    let index = catalog.handler("cards.index").unwrap();
    assert_eq!(index.retry_policy().unwrap().max_attempts, 5);
    // Durable handlers never run inline.
    let bus = events::Bus::builder().resource(Index).build().unwrap();
    assert!(bus.publish(&CardAdded { card: "lotus".into() }).is_err());
    let event = catalog.event("cards.card_added").unwrap();
    let upcast = event.upcast(1, serde_json::json!({ "name": "mox" })).unwrap();
    assert_eq!(upcast["card"], "mox");
}
