use events::{command_handler, Command};

#[derive(Command)]
struct Close;

#[command_handler]
fn close(_cmd: Close) {}

fn main() {}
