use std::sync::atomic::{AtomicUsize, Ordering};

use events::{event_handler, Bus, DomainEvent};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(DomainEvent)]
pub struct CardAdded {
    pub card: String,
}

#[event_handler]
fn count(_e: &CardAdded) {
    CALLS.fetch_add(1, Ordering::SeqCst);
}

#[event_handler]
pub fn count_too(_e: &CardAdded) -> () {
    CALLS.fetch_add(1, Ordering::SeqCst);
}

fn main() {
    let bus = Bus::builder().build().unwrap();
    let report = bus.publish(&CardAdded {
        card: "Black Lotus".into(),
    }).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.ran(), 2);
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
}
