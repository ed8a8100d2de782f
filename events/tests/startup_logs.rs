//! What building the bus says, so a forgotten `events::link!` or a follow-up that can only
//! reach async handlers under `dispatch` is never silent (issue 9, items 4 and 6). Its own test
//! binary with one test and a global subscriber: a thread-local subscriber races with other
//! tests' callsites in tracing's interest cache.

use events::{event_handler, Bus, DomainEvent, Problem, Publisher};

#[derive(DomainEvent)]
#[event(name = "billing.invoice_requested")]
struct InvoiceRequested;

#[derive(DomainEvent)]
#[event(name = "billing.invoice_sent")]
struct InvoiceSent;

/// An event whose handlers live in a crate nobody linked.
#[derive(DomainEvent)]
#[event(name = "search.card_indexed")]
struct CardIndexed;

#[event_handler(name = "billing.send", publishes(InvoiceSent))]
fn send(_: &InvoiceRequested, publisher: Publisher) {
    publisher.publish(InvoiceSent);
}

#[event_handler(name = "billing.archive")]
async fn archive(_: &InvoiceSent) {}

#[path = "support/log_buffer.rs"]
mod log_buffer;

#[test]
fn building_says_what_is_linked_and_what_looks_forgotten() {
    let buffer = log_buffer::Buffer::install(tracing::Level::INFO);
    let _bus = Bus::builder().build().unwrap();
    let log = buffer.text();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{log}"))
            .to_owned()
    };

    let built = line("event bus built");
    assert!(built.contains(" INFO "), "{built}");
    assert!(built.contains("crates=startup_logs"), "{built}");

    let unhandled = line("search.card_indexed");
    assert!(unhandled.contains(" WARN "), "{unhandled}");
    assert!(unhandled.contains("events::link!"), "{unhandled}");
    assert!(
        !log.lines()
            .any(|l| l.contains("has no handler") && l.contains("billing.")),
        "events with handlers are not reported:\n{log}"
    );

    let chain = line("sync handler `billing.send` publishes `billing.invoice_sent`");
    assert!(chain.contains(" WARN "), "{chain}");
    assert!(
        chain.contains("async handlers (billing.archive)"),
        "{chain}"
    );

    // Required handlers and crates: build fails, naming each missing one.
    let err = Bus::builder()
        .require_handlers(["billing.send", "search.index_card"])
        .require_crates(["startup_logs", "search_handlers"])
        .build()
        .unwrap_err();
    assert_eq!(
        err.problems(),
        [
            Problem::MissingHandler {
                name: "search.index_card".into()
            },
            Problem::MissingCrate {
                krate: "search_handlers".into(),
                linked: "startup_logs".into()
            }
        ]
    );
    // Debug reads like Display: `fn main() -> Result<(), BuildError>` and `.expect()` (item 14).
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(
        format!("{err:?}").contains("add `events::link!(search_handlers)` to the binary"),
        "{err:?}"
    );
}
