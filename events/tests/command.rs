//! Commands: one handler each, extractors, metadata, errors, panics, start-up checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use events::{
    command_handler, event_handler, Bus, Command, DomainEvent, Meta, Publisher, Res, SendError,
};

#[derive(Command)]
#[command(output = u64, error = LedgerError)]
struct Credit {
    amount: u64,
}

#[derive(Command)]
#[command(name = "ledger.reset")]
struct Reset;

#[derive(Command)]
#[command(output = String, error = String)]
struct Explode;

#[derive(Debug, PartialEq, thiserror::Error)]
enum LedgerError {
    #[error("amount must be positive")]
    Zero,
}

#[derive(Default)]
struct Ledger {
    total: AtomicU64,
}

#[derive(DomainEvent, Debug)]
struct Credited {
    amount: u64,
}

static SEEN: Mutex<Vec<(u64, Option<uuid::Uuid>)>> = Mutex::new(Vec::new());

#[event_handler]
fn remember_credit(e: &Credited, meta: Meta) {
    SEEN.lock().unwrap().push((e.amount, meta.causation_id()));
}

#[command_handler]
async fn credit(
    cmd: Credit,
    ledger: Res<Ledger>,
    meta: Meta,
    events: Publisher,
) -> Result<u64, LedgerError> {
    if cmd.amount == 0 {
        return Err(LedgerError::Zero);
    }
    let total = ledger.total.fetch_add(cmd.amount, Ordering::SeqCst) + cmd.amount;
    assert_eq!(meta.event_name(), "Credit");
    let report = events.dispatch(&Credited { amount: cmd.amount }).await;
    assert!(report.is_ok());
    Ok(total)
}

#[command_handler(name = "ledger::reset")]
fn reset(_: Reset, ledger: Res<Ledger>) -> Result<(), events::BoxError> {
    ledger.total.store(0, Ordering::SeqCst);
    Ok(())
}

#[command_handler]
fn explode(_: Explode) -> Result<String, String> {
    panic!("boom")
}

fn bus() -> Bus {
    Bus::builder().resource(Ledger::default()).build().unwrap()
}

#[tokio::test]
async fn a_command_reaches_its_one_handler_with_extractors() {
    let bus = bus();
    assert_eq!(bus.send(Credit { amount: 5 }).await.unwrap(), 5);
    assert_eq!(bus.send(Credit { amount: 2 }).await.unwrap(), 7);
    bus.send(Reset).await.unwrap();
    assert_eq!(
        bus.resource::<Ledger>()
            .unwrap()
            .total
            .load(Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn events_raised_by_a_command_are_caused_by_it() {
    let bus = bus();
    let meta = events::command_meta::<Credit>();
    bus.send_with(Credit { amount: 41 }, meta.clone())
        .await
        .unwrap();
    let seen = SEEN.lock().unwrap();
    assert!(seen.contains(&(41, Some(meta.event_id()))));
}

#[tokio::test]
async fn the_handlers_error_is_returned_typed() {
    let err = bus().send(Credit { amount: 0 }).await.unwrap_err();
    assert!(matches!(err, SendError::Rejected(LedgerError::Zero)));
    assert_eq!(err.into_rejected(), Some(LedgerError::Zero));
}

#[tokio::test]
async fn a_panicking_handler_is_an_error_not_a_crash() {
    let err = bus().send(Explode).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Panic(m) if m == "boom"),
        "{err:?}"
    );
}

#[test]
fn names_and_start_up_checks() {
    assert_eq!(Reset::NAME, "ledger.reset");
    assert_eq!(Credit::NAME, "Credit");
    // `Ledger` is needed by two command handlers.
    let err = Bus::builder().build().unwrap_err();
    let text = err.to_string();
    assert!(text.contains("handler `ledger::reset`"), "{text}");
    assert!(text.contains("needs resource `command::Ledger`"), "{text}");
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
struct Audited {
    what: &'static str,
}

#[tokio::test]
async fn a_capture_records_what_a_command_published() {
    let capture = events::testing::Capture::new()
        .without_handlers()
        .keep::<Audited>();
    let bus = Bus::builder()
        .resource(Ledger::default())
        .capture(&capture)
        .build()
        .unwrap();
    let meta = events::command_meta::<Credit>();
    bus.send_with(Credit { amount: 3 }, meta.clone())
        .await
        .unwrap();
    let _ = bus.publish(&Audited { what: "credit" });
    assert_eq!(capture.names(), ["Credited", "Audited"]);
    assert_eq!(capture.events::<Audited>(), [Audited { what: "credit" }]);
    let captured = capture.take();
    assert_eq!(captured[0].meta().causation_id(), Some(meta.event_id()));
    assert!(capture.names().is_empty());
    // Handlers did not run.
    assert!(!SEEN.lock().unwrap().iter().any(|(amount, _)| *amount == 3));
}
