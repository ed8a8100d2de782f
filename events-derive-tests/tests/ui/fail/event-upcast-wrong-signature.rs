use events::DomainEvent;

fn from_v1(payload: serde_json::Value) -> serde_json::Value {
    payload
}

#[derive(DomainEvent)]
#[event(version = 2, upcast = from_v1)]
struct Shipped;

fn main() {}
