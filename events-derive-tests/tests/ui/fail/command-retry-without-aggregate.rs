use events::Command;

#[derive(Command)]
#[command(retry_on_conflict = 3)]
struct Deposit {
    amount: u64,
}

fn main() {}
