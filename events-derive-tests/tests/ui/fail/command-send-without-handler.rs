use events::{Bus, Command};

#[derive(Command)]
struct Withdraw {
    amount: u64,
}

async fn run(bus: Bus) {
    let _ = bus.send(Withdraw { amount: 5 }).await;
}

fn main() {
    let _ = run;
}
