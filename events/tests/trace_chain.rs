#![cfg(feature = "sqlite")]
//! Traces: spans with OpenTelemetry's messaging field names, and a chain of follow-ups as one
//! trace (sync `publish`, async `dispatch`, durable delivery joined by its stored ids).
//!
//! A layer on tracing-subscriber's registry records every span with its parent; it is the
//! global subscriber of this test binary (a thread-local one races with other tests' callsites
//! in tracing's interest cache). Each test uses event types of its own and finds its spans from
//! its own root.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use events::store::SqliteStore;
use events::worker::Worker;
use events::{event_handler, Bus, DomainEvent, Meta, Publisher};
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One span as the recorder saw it.
#[derive(Clone, Debug)]
struct Span {
    name: &'static str,
    /// Index of the parent span in the recording.
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
}

impl Span {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no field `{name}` on {self:?}"))
    }
}

/// Records every span; spans are numbered in creation order (span ids are reused).
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Span>>>);

/// A span's number in the recording, kept in its extensions.
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a new span is in the registry");
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Index>().map(|i| i.0));
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        span.extensions_mut().insert(Index(spans.len()));
        spans.push(Span {
            name: attrs.metadata().name(),
            parent,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a recorded span is in the registry");
        let Some(index) = span.extensions().get::<Index>().map(|i| i.0) else {
            return;
        };
        values.record(&mut Fields(&mut self.0.lock().unwrap()[index].fields));
    }
}

/// The recording of this test binary's global subscriber.
fn recorded() -> Vec<Span> {
    recorder().0.lock().unwrap().clone()
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = Recorder::default();
        let subscriber = tracing_subscriber::registry().with(
            recorder
                .clone()
                .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
        );
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        recorder
    })
}

/// A span's subtree as indented lines: `name destination [handler]`, one level per parent.
fn tree(spans: &[Span], root: usize) -> Vec<String> {
    fn walk(spans: &[Span], at: usize, depth: usize, out: &mut Vec<String>) {
        let s = &spans[at];
        let mut line = format!(
            "{}{} {}",
            "  ".repeat(depth),
            s.name,
            s.field("messaging.destination.name")
        );
        if let Some(handler) = s.fields.get("events.handler") {
            line.push_str(&format!(" [{handler}]"));
        }
        out.push(line);
        for (child, _) in spans
            .iter()
            .enumerate()
            .filter(|(_, c)| c.parent == Some(at))
        {
            walk(spans, child, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(spans, root, 0, &mut out);
    out
}

/// The one root span named `name` whose destination is `destination`.
fn root(spans: &[Span], name: &str, destination: &str) -> usize {
    let roots: Vec<usize> = (0..spans.len())
        .filter(|&i| {
            let s = &spans[i];
            s.parent.is_none()
                && s.name == name
                && s.fields
                    .get("messaging.destination.name")
                    .map(String::as_str)
                    == Some(destination)
        })
        .collect();
    assert_eq!(roots.len(), 1, "roots {name} {destination} in {spans:#?}");
    roots[0]
}

// --- a sync chain: form -> record -> lead (conditional) -------------------------------------

#[derive(DomainEvent)]
#[event(name = "trace.form_submitted", aggregate = "Form")]
struct FormSubmitted {
    #[event(aggregate_id)]
    form: u32,
}

#[derive(DomainEvent)]
#[event(name = "trace.record_created", aggregate = "Table")]
struct RecordCreated {
    #[event(aggregate_id)]
    table: String,
}

#[derive(DomainEvent)]
#[event(name = "trace.lead_found")]
struct LeadFound;

#[event_handler(name = "trace.create_record")]
fn create_record(_: &FormSubmitted, publisher: Publisher) {
    publisher.publish(RecordCreated {
        table: "leads".into(),
    });
}

#[event_handler(name = "trace.audit")]
fn audit(_: &RecordCreated) {}

#[event_handler(name = "trace.new_lead")]
fn new_lead(e: &RecordCreated, publisher: Publisher) {
    if e.table == "leads" {
        publisher.publish(LeadFound);
    }
}

#[event_handler(name = "trace.welcome")]
fn welcome(_: &LeadFound) {}

#[test]
fn a_sync_chain_is_one_trace_with_messaging_fields() {
    recorder();
    let bus = Bus::builder().build().unwrap();
    let report = bus.publish(&FormSubmitted { form: 7 }).unwrap();
    assert!(report.is_ok(), "{report}");

    let spans = recorded();
    let root = root(&spans, "publish", "trace.form_submitted");
    assert_eq!(
        tree(&spans, root),
        [
            "publish trace.form_submitted",
            "  process trace.form_submitted [trace.create_record]",
            "    publish trace.record_created",
            "      process trace.record_created [trace.audit]",
            "      process trace.record_created [trace.new_lead]",
            "        publish trace.lead_found",
            "          process trace.lead_found [trace.welcome]",
        ]
    );

    // The fields: every span of the chain shares the conversation (correlation) id; each
    // follow-up names the event whose handler published it as its cause.
    let s = &spans[root];
    assert_eq!(s.field("messaging.system"), "events");
    assert_eq!(s.field("messaging.operation"), "publish");
    assert_eq!(s.field("otel.kind"), "producer");
    assert_eq!(s.field("events.aggregate"), "Form/7");
    assert!(!s.fields.contains_key("events.causation_id"), "{s:?}");
    let form_id = s.field("messaging.message.id").to_owned();
    assert_eq!(s.field("messaging.message.conversation_id"), form_id);

    let process = spans.iter().position(|s| s.parent == Some(root)).unwrap();
    let p = &spans[process];
    assert_eq!(p.field("messaging.operation"), "process");
    assert_eq!(p.field("otel.kind"), "consumer");
    assert_eq!(p.field("events.handler"), "trace.create_record");
    assert_eq!(p.field("messaging.message.id"), form_id);
    assert!(
        !p.fields.contains_key("events.position"),
        "not stored: {p:?}"
    );

    let record = spans
        .iter()
        .position(|s| s.parent == Some(process))
        .unwrap();
    let r = &spans[record];
    assert_eq!(
        r.field("messaging.destination.name"),
        "trace.record_created"
    );
    assert_eq!(r.field("events.causation_id"), form_id);
    assert_eq!(r.field("messaging.message.conversation_id"), form_id);
    assert_ne!(r.field("messaging.message.id"), form_id);
    assert_eq!(r.field("events.aggregate"), "Table/leads");
}

// --- an async chain under dispatch: deferred and immediate follow-ups -----------------------

#[derive(DomainEvent)]
#[event(name = "trace.order_placed")]
struct OrderPlaced;

#[derive(DomainEvent)]
#[event(name = "trace.stock_reserved")]
struct StockReserved;

#[derive(DomainEvent)]
#[event(name = "trace.invoice_requested")]
struct InvoiceRequested;

#[event_handler(name = "trace.reserve")]
async fn reserve(_: &OrderPlaced, publisher: Publisher) {
    tokio::task::yield_now().await;
    // Runs after this handler returns...
    publisher.publish(StockReserved);
    // ...this one now, inside it.
    let report = publisher.dispatch(&InvoiceRequested).await;
    assert!(report.is_ok(), "{report}");
}

#[event_handler(name = "trace.ship")]
async fn ship(_: &StockReserved) {
    tokio::task::yield_now().await;
}

#[event_handler(name = "trace.invoice")]
fn invoice(_: &InvoiceRequested) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_chain_is_one_trace() {
    recorder();
    let bus = Bus::builder().build().unwrap();
    let report = bus.dispatch(&OrderPlaced).await.unwrap();
    assert!(report.is_ok(), "{report}");

    let spans = recorded();
    let root = root(&spans, "publish", "trace.order_placed");
    assert_eq!(
        tree(&spans, root),
        [
            "publish trace.order_placed",
            "  process trace.order_placed [trace.reserve]",
            "    publish trace.invoice_requested",
            "      process trace.invoice_requested [trace.invoice]",
            "    publish trace.stock_reserved",
            "      process trace.stock_reserved [trace.ship]",
        ]
    );
}

// --- durable delivery: a trace of its own, joined to the chain by its stored ids ------------

#[derive(DomainEvent, Serialize, Deserialize)]
#[event(name = "trace.payment_received", aggregate = "Account")]
struct PaymentReceived {
    #[event(aggregate_id)]
    account: u32,
}

#[derive(DomainEvent, Serialize, Deserialize)]
#[event(name = "trace.receipt_due", aggregate = "Account")]
struct ReceiptDue {
    #[event(aggregate_id)]
    account: u32,
}

#[derive(DomainEvent)]
#[event(name = "trace.receipt_sent")]
struct ReceiptSent;

#[event_handler(name = "trace.book_payment")]
fn book_payment(e: &PaymentReceived, publisher: Publisher) {
    publisher.publish(ReceiptDue { account: e.account });
}

#[event_handler(durable, name = "trace.send_receipt")]
async fn send_receipt(_: &ReceiptDue, publisher: Publisher) {
    publisher.publish(ReceiptSent);
}

#[event_handler(name = "trace.archive_receipt")]
fn archive_receipt(_: &ReceiptSent, _meta: Meta) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_delivery_carries_its_position_aggregate_and_stored_causation() {
    recorder();
    let store = SqliteStore::open_in_memory().unwrap();
    let bus = Bus::builder().store(store.clone()).build().unwrap();
    let report = bus.dispatch(&PaymentReceived { account: 3 }).await.unwrap();
    assert!(report.is_ok(), "{report}");
    let summary = Worker::new(&bus, &store)
        .handlers(["trace.send_receipt"])
        .drain()
        .await
        .unwrap();
    assert_eq!(summary.handlers["trace.send_receipt"].delivered, 1);

    let spans = recorded();
    let publish = root(&spans, "publish", "trace.payment_received");
    assert_eq!(
        tree(&spans, publish),
        [
            "publish trace.payment_received",
            "  process trace.payment_received [trace.book_payment]",
            "    publish trace.receipt_due",
        ]
    );
    let payment = &spans[publish];
    let stored = spans
        .iter()
        .find(|s| {
            s.name == "publish" && s.field("messaging.destination.name") == "trace.receipt_due"
        })
        .unwrap();

    // The worker's delivery starts its own trace, under a `receive` span...
    let receive = root(&spans, "receive", "trace.receipt_due");
    assert_eq!(
        tree(&spans, receive),
        [
            "receive trace.receipt_due [trace.send_receipt]",
            "  process trace.receipt_due [trace.send_receipt]",
            "    publish trace.receipt_sent",
            "      process trace.receipt_sent [trace.archive_receipt]",
        ]
    );
    // ...joined to the chain by the ids stored with the event: the same message id as when it
    // was published, the chain's conversation id, and the payment as its cause.
    let process = spans
        .iter()
        .position(|s| s.parent == Some(receive))
        .unwrap();
    for span in [&spans[receive], &spans[process]] {
        assert_eq!(span.field("messaging.operation"), span.name);
        assert_eq!(
            span.field("messaging.message.id"),
            stored.field("messaging.message.id")
        );
        assert_eq!(
            span.field("messaging.message.conversation_id"),
            payment.field("messaging.message.id")
        );
        assert_eq!(
            span.field("events.causation_id"),
            payment.field("messaging.message.id")
        );
        assert_eq!(span.field("events.position"), "1");
        assert_eq!(span.field("events.aggregate"), "Account/3");
        assert_eq!(span.field("events.handler"), "trace.send_receipt");
    }
    let r = &spans[receive];
    assert_eq!(r.field("messaging.batch.message_count"), "1");
    assert_eq!(r.field("events.segment"), "0");
}
