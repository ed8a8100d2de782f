use events::{command_handler, Command};

#[derive(Command)]
struct Close;

struct Mailer;

#[command_handler]
fn close(_cmd: Close, _mailer: Mailer) -> Result<(), events::BoxError> {
    Ok(())
}

fn main() {}
