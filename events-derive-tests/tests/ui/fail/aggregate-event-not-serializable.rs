use events::DomainEvent;

#[derive(DomainEvent)]
struct MoneyDeposited {
    amount: u64,
}

events::event_set! {
    enum AccountEvent {
        Deposited(MoneyDeposited),
    }
}

fn main() {}
