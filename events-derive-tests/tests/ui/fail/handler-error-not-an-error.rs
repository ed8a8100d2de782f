use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

struct NotAnError;

#[event_handler]
fn handle(_e: &CardAdded) -> Result<(), NotAnError> {
    Ok(())
}

fn main() {}
