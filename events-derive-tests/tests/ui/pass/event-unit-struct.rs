use events::DomainEvent;

#[derive(DomainEvent)]
#[event(name = "system.started")]
struct Started;

fn main() {
    assert_eq!(Started::NAME, "system.started");
    assert_eq!(Started.aggregate_id(), None);
}
