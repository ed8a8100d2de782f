#[derive(events::sourcing::View, serde::Serialize, serde::Deserialize, Default)]
#[view(name = "ledger", name = "ledgers")]
struct Ledger {
    balance: i64,
}

fn main() {}
