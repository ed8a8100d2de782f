use events::{command_handler, Command};

#[derive(Command)]
struct Deposit {
    amount: u64,
}

#[command_handler]
fn deposit(cmd: Deposit) -> Result<(), events::BoxError> {
    let _ = cmd.amount;
    Ok(())
}

#[command_handler]
fn deposit_again(_cmd: Deposit) -> Result<(), events::BoxError> {
    Ok(())
}

fn main() {}
