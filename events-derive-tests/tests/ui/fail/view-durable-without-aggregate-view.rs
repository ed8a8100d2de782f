// `durable` keeps the view of each event's aggregate: the view must say which events
// (`impl AggregateView`).
#[derive(events::sourcing::View, serde::Serialize, serde::Deserialize, Default)]
#[view(durable = "bank.ledger")]
struct Ledger {
    balance: i64,
}

fn main() {}
