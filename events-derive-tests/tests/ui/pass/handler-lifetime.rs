use events::{event_handler, Bus, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded {
    card: String,
}

#[event_handler]
fn with_lifetime<'a>(e: &'a CardAdded) {
    let card: &'a str = &e.card;
    assert!(!card.is_empty());
}

#[event_handler]
async fn async_with_lifetime<'a>(e: &'a CardAdded) {
    let card: &'a str = &e.card;
    assert!(!card.is_empty());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bus = Bus::builder().build().unwrap();
    let report = bus.dispatch(&CardAdded { card: "x".into() }).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.ran(), 2);
}
