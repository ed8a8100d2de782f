use events::Command;

#[derive(Command)]
#[command(output = "u64", error = String)]
struct Open;

fn main() {}
