//! A bus that serves a declared subset of the linked handlers checks only their resources and
//! runs only them.

use std::sync::atomic::{AtomicU32, Ordering};

use events::{Bus, DomainEvent, Problem};

#[derive(DomainEvent)]
struct CardAdded;

static SEARCH_RAN: AtomicU32 = AtomicU32::new(0);

mod billing {
    pub struct Mailer;
    pub struct Ledger;

    #[events::event_handler]
    fn bill(_: &super::CardAdded, _: events::Res<Mailer>, _: events::Res<Ledger>) {
        unreachable!("billing is not served by the search tool");
    }
}

mod search {
    #[events::event_handler]
    fn index(_: &super::CardAdded) {
        super::SEARCH_RAN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub mod nested {
        #[events::event_handler]
        fn suggest(_: &super::super::CardAdded) {
            super::super::SEARCH_RAN.fetch_add(10, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// `search_tools` shares a prefix with `search` but is another module.
mod search_tools {
    pub struct Index;

    #[events::event_handler]
    fn rebuild(_: &super::CardAdded, _: events::Res<Index>) {
        unreachable!("`search_tools` is not under `search`");
    }
}

#[test]
fn the_whole_program_needs_every_resource() {
    let err = Bus::builder().build().unwrap_err();
    let missing = err
        .problems()
        .iter()
        .filter(|p| matches!(p, Problem::MissingResource { .. }))
        .count();
    assert_eq!(missing, 3, "{err}");
}

#[test]
fn a_bus_serving_one_module_checks_and_runs_only_its_handlers() {
    let bus = Bus::builder()
        .serve_module("serve_subset::search")
        .build()
        .expect("the search handlers need no resource");
    let report = bus.publish(&CardAdded).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.ran(), 2);
    assert_eq!(SEARCH_RAN.load(Ordering::SeqCst), 11);
}
