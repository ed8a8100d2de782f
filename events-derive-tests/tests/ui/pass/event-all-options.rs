use std::sync::Arc;

use events::DomainEvent;

#[derive(DomainEvent)]
#[event(name = "tables.record_created", version = 2, aggregate = "Table")]
struct RecordCreated {
    #[event(aggregate_id)]
    table_id: uuid_like::Id,
}

// Options may also be split across several attributes.
#[derive(DomainEvent)]
#[event(name = "forms.submitted")]
#[event(version = 3)]
#[event(aggregate = "Form")]
struct FormSubmitted {
    #[event(aggregate_id)]
    form_id: Arc<str>,
}

#[derive(DomainEvent)]
struct BoxedId {
    #[event(aggregate_id)]
    id: Box<i64>,
}

mod uuid_like {
    pub struct Id(pub u128);

    impl events::AggregateId for Id {
        fn to_aggregate_id(&self) -> String {
            format!("id-{}", self.0)
        }
    }
}

fn main() {
    assert_eq!(RecordCreated::NAME, "tables.record_created");
    assert_eq!(RecordCreated::VERSION, 2);
    assert_eq!(RecordCreated::AGGREGATE_TYPE, Some("Table"));
    let e = RecordCreated {
        table_id: uuid_like::Id(5),
    };
    assert_eq!(e.aggregate_id().as_deref(), Some("id-5"));

    assert_eq!(FormSubmitted::NAME, "forms.submitted");
    assert_eq!(FormSubmitted::VERSION, 3);
    assert_eq!(FormSubmitted::AGGREGATE_TYPE, Some("Form"));
    let e = FormSubmitted {
        form_id: Arc::from("f-1"),
    };
    assert_eq!(e.aggregate_id().as_deref(), Some("f-1"));

    assert_eq!(
        BoxedId { id: Box::new(-3) }.aggregate_id().as_deref(),
        Some("-3")
    );
}
