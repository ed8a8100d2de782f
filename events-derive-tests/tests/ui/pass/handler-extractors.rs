use std::sync::Mutex;

use events::{event_handler, Bus, DomainEvent, Meta, Publisher, Res};

#[derive(DomainEvent)]
struct OrderPlaced {
    #[event(aggregate_id)]
    order_id: u64,
}

#[derive(DomainEvent)]
struct InvoiceSent;

struct Mailer {
    sent: Mutex<Vec<u64>>,
}

#[event_handler]
fn send_invoice(e: &OrderPlaced, mailer: Res<Mailer>, meta: Meta, publisher: Publisher) {
    let _ = meta;
    mailer.sent.lock().unwrap().push(e.order_id);
    publisher.publish(InvoiceSent);
}

#[event_handler]
async fn audit(_e: &OrderPlaced, _meta: Meta, _mailer: Res<Mailer>) {}

#[event_handler]
fn with_path(_e: &OrderPlaced, _m: events::Res<Mailer>, _p: events::Publisher) {}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bus = Bus::builder()
        .resource(Mailer {
            sent: Mutex::new(Vec::new()),
        })
        .build()
        .unwrap();
    let report = bus.dispatch(&OrderPlaced { order_id: 3 }).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.ran(), 3);
    let mailer = bus.resource::<Mailer>().unwrap();
    assert_eq!(*mailer.sent.lock().unwrap(), [3]);
}
