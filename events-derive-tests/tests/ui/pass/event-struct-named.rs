use events::DomainEvent;

#[derive(DomainEvent)]
struct CardAdded {
    #[event(aggregate_id)]
    library_id: String,
    #[allow(dead_code)]
    card: String,
}

#[derive(DomainEvent)]
struct NoAggregate {
    #[allow(dead_code)]
    value: u8,
}

fn main() {
    assert_eq!(CardAdded::NAME, "CardAdded");
    assert_eq!(CardAdded::VERSION, 1);
    assert_eq!(CardAdded::AGGREGATE_TYPE, None);
    let e = CardAdded {
        library_id: "lib-1".into(),
        card: "Black Lotus".into(),
    };
    assert_eq!(e.aggregate_id().as_deref(), Some("lib-1"));
    assert_eq!(NoAggregate { value: 1 }.aggregate_id(), None);
}
