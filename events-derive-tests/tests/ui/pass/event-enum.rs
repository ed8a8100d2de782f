use events::DomainEvent;

#[derive(DomainEvent)]
#[event(name = "tables.record_changed", aggregate = "Table")]
enum RecordChanged {
    Created {
        #[event(aggregate_id)]
        table_id: String,
        #[allow(dead_code)]
        record: u64,
    },
    Deleted(#[allow(dead_code)] u64, #[event(aggregate_id)] u32),
    Cleared,
    #[allow(dead_code)]
    Imported {
        rows: usize,
    },
}

fn main() {
    assert_eq!(RecordChanged::AGGREGATE_TYPE, Some("Table"));
    let created = RecordChanged::Created {
        table_id: "t-1".into(),
        record: 4,
    };
    assert_eq!(created.aggregate_id().as_deref(), Some("t-1"));
    assert_eq!(
        RecordChanged::Deleted(4, 7).aggregate_id().as_deref(),
        Some("7")
    );
    assert_eq!(RecordChanged::Cleared.aggregate_id(), None);
    assert_eq!(RecordChanged::Imported { rows: 3 }.aggregate_id(), None);
}
