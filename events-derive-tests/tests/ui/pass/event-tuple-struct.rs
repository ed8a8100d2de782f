use events::DomainEvent;

#[derive(DomainEvent)]
struct RecordDeleted(#[allow(dead_code)] String, #[event(aggregate_id)] u64);

fn main() {
    assert_eq!(RecordDeleted::NAME, "RecordDeleted");
    let e = RecordDeleted("r-9".into(), 42);
    assert_eq!(e.aggregate_id().as_deref(), Some("42"));
}
