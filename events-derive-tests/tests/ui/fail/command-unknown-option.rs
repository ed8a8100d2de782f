use events::Command;

#[derive(Command)]
#[command(ouput = u64)]
struct Open;

fn main() {}
