#[derive(events::sourcing::View, serde::Serialize, serde::Deserialize, Default)]
struct Ledger<T> {
    balance: T,
}

fn main() {}
