use events::DomainEvent;

fn from_v1(_: u32, payload: serde_json::Value) -> Result<serde_json::Value, events::BoxError> {
    Ok(payload)
}

#[derive(DomainEvent)]
#[event(upcast = from_v1)]
struct Shipped;

fn main() {}
