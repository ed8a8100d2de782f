use events::{command_handler, Command};

#[derive(Command)]
#[command(output = u64, error = String)]
struct Open;

#[command_handler]
fn open(_cmd: Open) -> Result<String, String> {
    Ok("not a number".into())
}

fn main() {}
