use events::{event_handler, DomainEvent};

#[derive(DomainEvent)]
struct CardAdded;

struct Mailer;

#[event_handler]
fn handle(_e: &CardAdded, _mailer: Mailer) {}

fn main() {}
