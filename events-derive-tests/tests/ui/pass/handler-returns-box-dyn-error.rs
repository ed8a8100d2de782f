// The usual first signature: an error that is neither `Send` nor `Sync`. Accepted, sync and
// async, inline and durable: the error is kept as its message (with its sources').
use events::{event_handler, DomainEvent};

#[derive(DomainEvent, serde::Serialize, serde::Deserialize)]
struct CardAdded;

#[event_handler]
fn handle(_e: &CardAdded) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}

#[event_handler]
async fn handle_async(_e: &CardAdded) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}

#[event_handler(durable, name = "cards.index")]
fn index(_e: &CardAdded) -> Result<(), Box<dyn std::error::Error + Send>> {
    Ok(())
}

fn main() {}
