use events::Command;

#[derive(Default)]
struct Account;

#[derive(Command, Clone)]
#[command(aggregate = Account, output = String)]
struct Open {
    #[command(id)]
    id: String,
}

fn main() {}
