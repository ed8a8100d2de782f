// The derive fails, but still gives the type a `DomainEvent` impl: the handler, the publish
// call and the `publishes` list below add no errors of their own.
use events::{event_handler, Bus, DomainEvent};

#[derive(DomainEvent)]
#[event(topic = "cards")]
struct CardAdded;

#[event_handler(publishes(CardAdded))]
fn handle(_e: &CardAdded) {}

fn main() {
    let bus = Bus::builder().build().unwrap();
    let _ = bus.publish(&CardAdded);
}
