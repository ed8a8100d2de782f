//! Start-up validation: building the bus walks the catalog once and lists every problem.

use events::{event_handler, Bus, DomainEvent, Problem, Res};

struct Mailer;
struct Search;

#[derive(DomainEvent)]
#[event(name = "cards.card_added")]
struct CardAdded;

mod other {
    /// Same event name as `CardAdded`, by mistake.
    #[derive(events::DomainEvent)]
    #[event(name = "cards.card_added")]
    pub struct CardAdded2;
}

#[event_handler(name = "notify")]
fn notify(_: &CardAdded, _mailer: Res<Mailer>) {}

#[event_handler(name = "notify")]
fn notify_again(_: &CardAdded, _search: Res<Search>, _mailer: Res<Mailer>) {}

#[test]
fn build_reports_every_problem_at_once() {
    let err = Bus::builder()
        .resource(7u32)
        .resource(8u32)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems().len(), 6, "{text}");
    assert!(
        text.starts_with("the event bus cannot start: 6 problems found\n  - "),
        "{text}"
    );
    for expected in [
        "handler name `notify` is used 2 times (events/tests/startup.rs:20, events/tests/startup.rs:23); give each a unique `#[event_handler(name = \"..\")]`",
        "event name `cards.card_added` is used by several types (startup::CardAdded, startup::other::CardAdded2)",
        "resource `u32` is provided 2 times; provide each resource type once",
        "handler `notify` (events/tests/startup.rs:20) needs resource `startup::Mailer`; provide it with `Bus::builder().resource(..)`",
        "handler `notify` (events/tests/startup.rs:23) needs resource `startup::Search`",
        "handler `notify` (events/tests/startup.rs:23) needs resource `startup::Mailer`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(
        matches!(&err.problems()[0], Problem::DuplicateHandlerName { name, .. } if name == "notify")
    );
}

#[test]
fn providing_what_is_needed_fixes_only_the_resource_problems() {
    let err = Bus::builder()
        .resource(Mailer)
        .resource(Search)
        .build()
        .unwrap_err();
    assert_eq!(err.problems().len(), 2, "{err}");
    assert!(err.problems().iter().all(|p| matches!(
        p,
        Problem::DuplicateHandlerName { .. } | Problem::DuplicateEventName { .. }
    )));
}
