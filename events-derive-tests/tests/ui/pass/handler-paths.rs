// Events and handlers in different modules, named by paths, with attributes and visibility.
mod domain {
    use events::DomainEvent;

    /// A card was added to a library.
    #[derive(DomainEvent, Debug, Clone)]
    #[event(name = "library.card_added", aggregate = "Library")]
    pub struct CardAdded {
        #[event(aggregate_id)]
        pub library_id: u64,
    }
}

mod search {
    use events::event_handler;

    /// Indexes the card.
    #[event_handler(order = 1)]
    #[allow(clippy::needless_pass_by_ref_mut)]
    pub(crate) fn index(e: &crate::domain::CardAdded) {
        assert_eq!(e.library_id, 7);
    }

    pub mod nested {
        #[events::event_handler]
        pub fn notify(_e: &super::super::domain::CardAdded, _meta: events::Meta) {}
    }
}

type Alias = domain::CardAdded;

#[events::event_handler]
fn through_alias(e: &Alias) {
    assert_eq!(e.library_id, 7);
}

fn main() {
    let bus = events::Bus::builder().build().unwrap();
    let report = bus.publish(&domain::CardAdded { library_id: 7 }).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.ran(), 3);
    let _ = search::index;
}
