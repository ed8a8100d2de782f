use events::{command_handler, Command};

#[command_handler]
fn handle<C: Command>(_cmd: C) -> Result<(), events::BoxError> {
    Ok(())
}

fn main() {}
