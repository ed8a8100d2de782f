#[derive(events::sourcing::View, serde::Serialize, serde::Deserialize, Default)]
#[view(durable = bank_ledger)]
struct Ledger {
    balance: i64,
}

fn main() {}
