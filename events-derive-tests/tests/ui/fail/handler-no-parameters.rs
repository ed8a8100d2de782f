use events::event_handler;

#[event_handler]
fn handle() {}

fn main() {}
