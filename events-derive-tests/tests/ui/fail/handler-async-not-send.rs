use std::rc::Rc;

use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

async fn save() {}

#[event_handler]
async fn handle(_e: &CardAdded) {
    let counter = Rc::new(1);
    save().await;
    drop(counter);
}

fn main() {}
