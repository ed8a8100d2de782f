#[derive(events::sourcing::View, serde::Serialize, serde::Deserialize, Default)]
#[view(nmae = "ledger")]
struct Ledger {
    balance: i64,
}

fn main() {}
