use events::{command_handler, Bus, Command};

#[derive(Command)]
struct Withdraw {
    amount: u64,
}

// The misspelt option is the one error: `send` below still compiles against the handler.
#[command_handler(remot)]
fn withdraw(cmd: Withdraw) -> Result<(), events::BoxError> {
    let _ = cmd.amount;
    Ok(())
}

async fn run(bus: Bus) {
    let _ = bus.send(Withdraw { amount: 5 }).await;
}

fn main() {
    let _ = run;
}
