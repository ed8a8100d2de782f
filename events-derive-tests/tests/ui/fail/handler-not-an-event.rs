use events::event_handler;

struct NotAnEvent;

#[event_handler]
fn handle(_e: &NotAnEvent) {}

fn main() {}
