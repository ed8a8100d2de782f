//! Dispatch: order, isolation of errors and panics, sync/async, resources, metadata, chains.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use events::{event_handler, Bus, DomainEvent, FailureCause, HandlerKind, Meta, Publisher, Res};

#[path = "support/journal.rs"]
mod journal;

use journal::Journal;

#[derive(DomainEvent, Debug, Clone)]
#[event(name = "tables.record_created", aggregate = "Table")]
struct RecordCreated {
    #[event(aggregate_id)]
    table: String,
    record: u64,
}

// Handlers of one event run by `order`, then by name: declared here out of order on purpose.
#[event_handler(name = "record.z_last", order = 10)]
fn last(e: &RecordCreated, journal: Res<Journal>) {
    journal.push(format!("last {}", e.record));
}

#[event_handler(name = "record.b_fails")]
fn fails(e: &RecordCreated, journal: Res<Journal>) -> Result<(), std::io::Error> {
    journal.push("fails");
    Err(std::io::Error::other(format!("disk full for {}", e.table)))
}

#[event_handler(name = "record.c_panics")]
fn panics(e: &RecordCreated, journal: Res<Journal>) {
    journal.push("panics");
    if e.record > 0 {
        panic!("record {} is cursed", e.record);
    }
}

#[event_handler(name = "record.a_first", order = -5)]
fn first(e: &RecordCreated, journal: Res<Journal>, meta: Meta) {
    journal.push(format!("first {} {}", e.record, meta.event_name()));
}

#[event_handler(name = "record.d_async")]
async fn notify(e: &RecordCreated, journal: Res<Journal>) {
    tokio::task::yield_now().await;
    journal.push(format!("async {}", e.record));
}

fn bus() -> (Bus, Arc<Journal>) {
    let journal = Arc::new(Journal::default());
    let bus = Bus::builder()
        .shared_resource(Arc::clone(&journal))
        .resource(Counter::default())
        .build()
        .expect("bus builds");
    (bus, journal)
}

#[test]
fn publish_runs_sync_handlers_in_order_and_isolates_failures() {
    let (bus, journal) = bus();
    let report = bus
        .publish(&RecordCreated {
            table: "t1".into(),
            record: 3,
        })
        .unwrap();

    assert_eq!(
        journal.take(),
        ["first 3 tables.record_created", "fails", "panics", "last 3"]
    );
    assert_eq!(report.ran(), 4);
    assert!(!report.is_ok());
    let failures: Vec<_> = report.failures().iter().map(|f| f.to_string()).collect();
    assert_eq!(
        failures,
        [
            "handler `record.b_fails` failed: disk full for t1",
            "handler `record.c_panics` failed: panicked: record 3 is cursed",
        ]
    );
    assert!(matches!(
        report.failures()[1].cause(),
        FailureCause::Panic(_)
    ));
    // `publish` does not run async handlers, and says so, with why and what to do.
    assert_eq!(report.skipped(), ["record.d_async"]);
    assert!(
        report.to_string().contains(
            "1 skipped (record.d_async: async, not run by `publish`; use `dispatch(..).await`)"
        ),
        "{report}"
    );
}

#[tokio::test]
async fn dispatch_runs_sync_and_async_handlers_in_order() {
    let (bus, journal) = bus();
    let report = bus
        .dispatch(&RecordCreated {
            table: "t1".into(),
            record: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        journal.take(),
        [
            "first 0 tables.record_created",
            "fails",
            "panics",
            "async 0",
            "last 0"
        ]
    );
    assert_eq!(report.ran(), 5);
    assert!(report.skipped().is_empty());
    assert_eq!(report.failures().len(), 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_dispatches_an_owned_event_on_the_runtime() {
    let (bus, journal) = bus();
    let report = bus
        .spawn(RecordCreated {
            table: "t9".into(),
            record: 0,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.ran(), 5);
    assert!(journal.take().contains(&"async 0".to_string()));
}

#[test]
fn catalog_lists_handlers_with_kind_and_location() {
    let catalog = events::catalog();
    let event = catalog
        .event("tables.record_created")
        .expect("event in catalog");
    assert_eq!(event.aggregate_type(), Some("Table"));
    assert!(event.type_name().ends_with("RecordCreated"));
    let names: Vec<_> = catalog
        .handlers_of(event)
        .iter()
        .map(|h| h.name())
        .collect();
    assert_eq!(
        names,
        [
            "record.a_first",
            "record.b_fails",
            "record.c_panics",
            "record.d_async",
            "record.z_last"
        ]
    );

    let notify = catalog.handler("record.d_async").unwrap();
    assert_eq!(notify.kind(), HandlerKind::Async);
    assert_eq!(notify.location().file(), "events/tests/dispatch.rs");
    assert_eq!(notify.location().line(), 47);
    assert_eq!(notify.location().module_path(), "dispatch");
    assert_eq!(
        notify.resources().collect::<Vec<_>>(),
        [std::any::type_name::<Journal>()]
    );
}

// Chains: a handler publishes the next event through `Publisher`.

#[derive(Default)]
struct Counter(AtomicUsize);

#[derive(DomainEvent, Clone, Copy)]
struct FormSubmitted {
    #[event(aggregate_id)]
    form: u32,
}

#[derive(DomainEvent)]
#[event(name = "automation.triggered")]
struct AutomationTriggered {
    form: u32,
    cause: Meta,
}

#[derive(DomainEvent)]
struct Loop(u32);

#[event_handler(publishes(AutomationTriggered))]
fn trigger_automation(e: &FormSubmitted, meta: Meta, publisher: Publisher) {
    publisher.publish(AutomationTriggered {
        form: e.form,
        cause: meta,
    });
}

static SEEN: Mutex<Vec<(Meta, Meta, u32)>> = Mutex::new(Vec::new());

#[event_handler]
fn record_automation(e: &AutomationTriggered, meta: Meta) {
    SEEN.lock().unwrap().push((e.cause.clone(), meta, e.form));
}

#[event_handler]
fn loop_forever(e: &Loop, publisher: Publisher, counter: Res<Counter>) {
    counter.0.fetch_add(1, Ordering::SeqCst);
    publisher.publish(Loop(e.0 + 1));
}

#[test]
fn follow_up_events_carry_correlation_and_causation() {
    let (bus, _) = bus();
    let first = Meta::new::<FormSubmitted>();
    let report = bus
        .publish_with(&FormSubmitted { form: 7 }, first.clone())
        .unwrap();
    assert!(report.is_ok(), "{report}");

    let seen = SEEN.lock().unwrap();
    let (cause, follow_up, form) = seen.last().cloned().unwrap();
    assert_eq!(form, 7);
    assert_eq!(
        cause, first,
        "the handler saw the metadata it was published with"
    );
    assert_eq!(follow_up.event_name(), "automation.triggered");
    assert_eq!(follow_up.causation_id(), Some(first.event_id()));
    assert_eq!(follow_up.correlation_id(), first.correlation_id());
    assert_ne!(follow_up.event_id(), first.event_id());
    assert!(
        follow_up.event_id() > first.event_id(),
        "UUID v7 ids are ordered by time"
    );

    let info = events::catalog()
        .handler("dispatch::trigger_automation")
        .unwrap();
    assert_eq!(info.publishes(), ["automation.triggered"]);
}

#[test]
fn a_cycle_of_follow_ups_is_cut_and_reported() {
    let (bus, _) = bus();
    let counter = bus.resource::<Counter>().unwrap();
    let report = bus.publish(&Loop(0)).unwrap();
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        events::MAX_DEPTH as usize + 1
    );
    let text = report.to_string();
    assert!(text.contains("nested 65 deep"), "{text}");
}

#[test]
fn aggregate_ids_come_from_the_marked_field() {
    let e = RecordCreated {
        table: "t-42".into(),
        record: 1,
    };
    assert_eq!(e.aggregate_id().as_deref(), Some("t-42"));
    assert_eq!(
        FormSubmitted { form: 9 }.aggregate_id().as_deref(),
        Some("9")
    );
    assert_eq!(Loop(1).aggregate_id(), None);
    assert_eq!(Loop::AGGREGATE_TYPE, None);
    assert_eq!(Loop::NAME, "Loop");
    assert_eq!(Loop::VERSION, 1);
}

#[derive(DomainEvent, Debug)]
#[event(aggregate = "Record", version = 3)]
enum RecordChanged {
    Updated {
        #[event(aggregate_id)]
        id: u64,
        field: String,
    },
    Deleted(#[event(aggregate_id)] u64),
    Purged,
}

#[test]
fn enum_events_read_the_id_of_each_variant() {
    let updated = RecordChanged::Updated {
        id: 3,
        field: "title".into(),
    };
    assert_eq!(updated.aggregate_id().as_deref(), Some("3"));
    assert!(matches!(updated, RecordChanged::Updated { field, .. } if field == "title"));
    assert_eq!(
        RecordChanged::Deleted(4).aggregate_id().as_deref(),
        Some("4")
    );
    assert_eq!(RecordChanged::Purged.aggregate_id(), None);
    assert_eq!(RecordChanged::VERSION, 3);
}

// Follow-ups inherit the mode of the dispatch they are in (issue 9, item 4).

#[derive(DomainEvent)]
struct Ordered(u32);

#[derive(DomainEvent)]
struct Invoiced(u32);

static MAILED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[event_handler(publishes(Invoiced))]
fn invoice(e: &Ordered, publisher: Publisher) {
    publisher.publish(Invoiced(e.0));
}

#[event_handler]
async fn mail_invoice(e: &Invoiced) {
    tokio::task::yield_now().await;
    MAILED.lock().unwrap().push(e.0);
}

#[tokio::test]
async fn a_sync_handlers_follow_up_reaches_async_handlers_under_dispatch() {
    let (bus, _) = bus();
    let report = bus.dispatch(&Ordered(1)).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(MAILED.lock().unwrap().contains(&1), "the async handler ran");
    let follow_up = &report.follow_ups()[0];
    assert_eq!((follow_up.event(), follow_up.ran()), ("Invoiced", 1));
}

#[test]
fn a_skip_down_the_chain_shows_in_the_outer_report() {
    let (bus, _) = bus();
    let report = bus.publish(&Ordered(2)).unwrap();
    assert!(!report.is_ok(), "{report}");
    assert!(
        report.skipped().is_empty(),
        "the outer event's own handlers all ran"
    );
    assert_eq!(report.follow_ups()[0].skipped(), ["dispatch::mail_invoice"]);
    assert!(!MAILED.lock().unwrap().contains(&2));
    assert!(
        report.to_string().contains("follow-up `Invoiced`"),
        "{report}"
    );
}

// An event with sync handlers only takes the plain path: failures and panics count once.

#[derive(DomainEvent)]
struct Rejected;

#[event_handler]
fn reject_with_error(_: &Rejected) -> Result<(), String> {
    Err("rejected".into())
}

#[event_handler]
fn reject_with_panic(_: &Rejected) {
    panic!("rejected loudly")
}

#[tokio::test]
async fn failures_of_sync_only_events_count_once_in_ran() {
    let (bus, _) = bus();
    for report in [
        bus.publish(&Rejected).unwrap(),
        bus.dispatch(&Rejected).await.unwrap(),
    ] {
        assert_eq!(report.ran(), 2, "{report}");
        assert_eq!(report.failures().len(), 2, "{report}");
    }
}

// The walk catches panics once around it and resumes after the handler that panicked or
// failed: every handler still runs, in order, and each panic is its handler's failure.

#[derive(DomainEvent)]
struct Audited;

static AUDIT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[event_handler(order = 1)]
fn audit_panics_first(_: &Audited) {
    AUDIT.lock().unwrap().push("1");
    panic!("first")
}

#[event_handler(order = 2)]
fn audit_runs_second(_: &Audited) {
    AUDIT.lock().unwrap().push("2");
}

#[event_handler(order = 3)]
fn audit_panics_third(_: &Audited) {
    AUDIT.lock().unwrap().push("3");
    panic!("third")
}

#[event_handler(order = 4)]
fn audit_fails_last(_: &Audited) -> Result<(), String> {
    AUDIT.lock().unwrap().push("4");
    Err("last".into())
}

#[test]
fn panics_and_failures_do_not_stop_the_handlers_after_them() {
    let (bus, _) = bus();
    for round in 0..2 {
        let report = bus.publish(&Audited).unwrap();
        let run = std::mem::take(&mut *AUDIT.lock().unwrap());
        assert_eq!(run, ["1", "2", "3", "4"], "round {round}");
        assert_eq!(report.ran(), 4, "{report}");
        let failures: Vec<_> = report.failures().iter().map(|f| f.to_string()).collect();
        assert_eq!(
            failures,
            [
                "handler `dispatch::audit_panics_first` failed: panicked: first",
                "handler `dispatch::audit_panics_third` failed: panicked: third",
                "handler `dispatch::audit_fails_last` failed: last",
            ]
        );
    }
}

// Handlers that take the event alone need no dispatch context; an event whose sync handlers
// mix them with handlers that take parameters walks them all, in order, each called as it
// needs, under `publish` and under `dispatch`.

#[derive(DomainEvent)]
#[event(name = "forms.mixed")]
struct Mixed;

static MIXED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[event_handler(order = 1)]
fn mixed_bare(_: &Mixed) {
    MIXED.lock().unwrap().push("bare".into());
}

#[event_handler(order = 2)]
fn mixed_with_meta(_: &Mixed, meta: Meta) {
    MIXED
        .lock()
        .unwrap()
        .push(format!("meta of {}", meta.event_name()));
}

#[event_handler(order = 3)]
fn mixed_bare_fails(_: &Mixed) -> Result<(), String> {
    MIXED.lock().unwrap().push("fails".into());
    Err("no".into())
}

#[tokio::test]
async fn bare_handlers_and_handlers_with_parameters_share_one_walk() {
    let (bus, _) = bus();
    let check = |report: events::Report| {
        let run = std::mem::take(&mut *MIXED.lock().unwrap());
        assert_eq!(run, ["bare", "meta of forms.mixed", "fails"]);
        assert_eq!(report.ran(), 3, "{report}");
        let failures: Vec<_> = report.failures().iter().map(|f| f.handler()).collect();
        assert_eq!(failures, ["dispatch::mixed_bare_fails"], "{report}");
    };
    check(bus.publish(&Mixed).unwrap());
    check(bus.dispatch(&Mixed).await.unwrap());
    let kinds: Vec<_> = bus
        .catalog()
        .handlers()
        .iter()
        .filter(|h| h.event_name() == "forms.mixed")
        .map(|h| h.kind())
        .collect();
    assert_eq!(kinds, [HandlerKind::Sync; 3]);
}

#[test]
fn a_publish_result_is_as_small_as_a_report() {
    // The tally is never zero, so the `Err` needs no tag of its own: two registers, as before.
    let report = std::mem::size_of::<events::Report>();
    assert_eq!(
        std::mem::size_of::<Result<events::Report, events::PublishError>>(),
        report
    );
    assert_eq!(report, 2 * std::mem::size_of::<usize>());
}

// --- the usual first signature: `Result<(), Box<dyn Error>>` ------------------------------------

#[derive(DomainEvent, Debug)]
#[event(name = "imports.file_dropped")]
struct FileDropped {
    path: String,
}

/// An error with a source, as `?` on a library error gives.
#[derive(Debug)]
struct ImportFailed(std::io::Error);

impl std::fmt::Display for ImportFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot import the file")
    }
}

impl std::error::Error for ImportFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[event_handler(name = "imports.read")]
fn read_file(e: &FileDropped) -> Result<(), Box<dyn std::error::Error>> {
    Err(Box::new(ImportFailed(std::io::Error::other(format!(
        "{} is not readable",
        e.path
    )))))
}

#[test]
fn a_handler_returning_box_dyn_error_compiles_and_keeps_the_message_and_its_sources() {
    let (bus, _) = bus();
    let report = bus
        .publish(&FileDropped {
            path: "cards.csv".into(),
        })
        .unwrap();
    let failures: Vec<_> = report.failures().iter().map(|f| f.to_string()).collect();
    assert_eq!(
        failures,
        ["handler `imports.read` failed: cannot import the file: cards.csv is not readable"]
    );
}
