use std::sync::atomic::{AtomicUsize, Ordering};

use events::{event_handler, Bus, DomainEvent};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(DomainEvent)]
struct CardAdded;

async fn notify() {}

#[event_handler]
async fn notify_followers(_e: &CardAdded) {
    notify().await;
    CALLS.fetch_add(1, Ordering::SeqCst);
}

#[event_handler]
async fn index(_e: &CardAdded) -> Result<(), std::io::Error> {
    notify().await;
    CALLS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bus = Bus::builder().build().unwrap();
    let report = bus.dispatch(&CardAdded).await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.ran(), 2);
    assert_eq!(CALLS.load(Ordering::SeqCst), 2);
}
