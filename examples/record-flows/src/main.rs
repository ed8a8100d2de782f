//! A no-code engine's event flows on the in-process bus: tables, records, forms, automations.
//!
//! - simple: `RecordDeleted` has one handler;
//! - fan-out: `RecordCreated` reaches an audit log, a search index, an automation rule and a
//!   webhook (async);
//! - chain: a submitted form creates a record, whose creation may trigger an automation;
//! - conditional: the automation only fires for the `leads` table;
//! - isolation: the webhook of one record fails, and nothing else does.
//!
//! Then the durable path (`durable.rs`): record updates stored in SQLite (an in-memory database)
//! and delivered by a worker: a batched handler, a webhook retried with back-off, dead letters
//! that hold back the later updates of their record, an operator retrying and dropping them,
//! and a V1 row read by a handler of V2.
//!
//! Run with `cargo run -p record-flows`; with `-- --metrics-addr 127.0.0.1:9000` it also serves
//! Prometheus metrics and prints its own scrape at the end.

mod durable;
mod metrics;
mod trace;

use std::sync::Mutex;

use events::{event_handler, Bus, DomainEvent, Meta, Publisher, Res};

#[derive(DomainEvent, Debug, Clone)]
#[event(name = "forms.form_submitted", aggregate = "Form")]
struct FormSubmitted {
    #[event(aggregate_id)]
    form: String,
    table: String,
    values: Vec<(String, String)>,
}

#[derive(DomainEvent, Debug, Clone)]
#[event(name = "tables.record_created", aggregate = "Table")]
struct RecordCreated {
    #[event(aggregate_id)]
    table: String,
    record: u64,
    values: Vec<(String, String)>,
}

#[derive(DomainEvent, Debug, Clone)]
#[event(name = "tables.record_deleted", aggregate = "Table")]
struct RecordDeleted {
    #[event(aggregate_id)]
    table: String,
    record: u64,
}

#[derive(DomainEvent, Debug, Clone)]
#[event(name = "automations.triggered")]
struct AutomationTriggered {
    rule: &'static str,
    record: u64,
}

/// The engine's tables: a counter of record ids and the audit log.
#[derive(Default)]
struct Store {
    next_id: Mutex<u64>,
    audit: Mutex<Vec<String>>,
}

/// A search index that only keeps record ids per table.
#[derive(Default)]
struct SearchIndex(Mutex<Vec<(String, u64)>>);

// Chain: a submitted form becomes a record.
#[event_handler(name = "forms.create_record", publishes(RecordCreated))]
fn create_record(e: &FormSubmitted, store: Res<Store>, publisher: Publisher) -> Result<(), String> {
    let record = {
        let mut id = store.next_id.lock().unwrap();
        *id += 1;
        *id
    };
    let created = RecordCreated {
        table: e.table.clone(),
        record,
        values: e.values.clone(),
    };
    println!("  form {} -> record {record}", e.form);
    // Runs right after this handler returns; its report is part of the outer report.
    publisher.publish(created);
    Ok(())
}

// Fan-out: every record creation is audited, indexed, checked by rules, and sent to a webhook.
#[event_handler(name = "tables.audit", order = -1)]
fn audit(e: &RecordCreated, store: Res<Store>, meta: Meta) {
    let cause = match meta.causation_id() {
        Some(id) => format!("caused by event {id}"),
        None => "published directly".to_owned(),
    };
    let line = format!(
        "{} {} record {} ({cause})",
        meta.event_name(),
        e.table,
        e.record
    );
    store.audit.lock().unwrap().push(line);
}

#[event_handler(name = "tables.index_record")]
fn index_record(e: &RecordCreated, index: Res<SearchIndex>) {
    index.0.lock().unwrap().push((e.table.clone(), e.record));
}

// Conditional: only leads trigger the follow-up automation.
#[event_handler(name = "automations.new_lead", publishes(AutomationTriggered))]
fn new_lead(e: &RecordCreated, publisher: Publisher) {
    if e.table == "leads" {
        publisher.publish(AutomationTriggered {
            rule: "welcome-lead",
            record: e.record,
        });
    }
}

#[event_handler(name = "automations.run")]
fn run_automation(e: &AutomationTriggered, meta: Meta) {
    println!(
        "  automation {} for record {} (correlation {})",
        e.rule,
        e.record,
        meta.correlation_id()
    );
}

// Async processing: a webhook call; it fails for records without an email.
#[event_handler(name = "webhooks.record_created")]
async fn webhook(e: &RecordCreated) -> Result<(), String> {
    tokio::task::yield_now().await;
    if !e.values.iter().any(|(k, _)| k == "email") {
        return Err(format!("webhook rejected record {}: no email", e.record));
    }
    Ok(())
}

// Simple: one handler.
#[event_handler(name = "tables.unindex_record")]
fn unindex_record(e: &RecordDeleted, index: Res<SearchIndex>) {
    index
        .0
        .lock()
        .unwrap()
        .retain(|(t, r)| !(t == &e.table && *r == e.record));
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), events::BoxError> {
    let metrics_addr = metrics::serve_from_args()?;
    let traces = trace::Lines::install();
    let bus = Bus::builder()
        .resource(Store::default())
        .resource(SearchIndex::default())
        .resource(durable::Crm::default())
        .record_durations(metrics_addr.is_some())
        .build()?;

    println!("catalog:");
    for event in events::catalog().events() {
        for h in events::catalog().handlers_of(event) {
            println!(
                "  {} -> {} ({}, {})",
                event.name(),
                h.name(),
                h.kind().as_str(),
                h.location()
            );
        }
    }

    println!("sync flow (publish: sync handlers inline, async ones reported as skipped):");
    let form = FormSubmitted {
        form: "contact".into(),
        table: "leads".into(),
        values: vec![("email".into(), "ada@example.com".into())],
    };
    println!("  {}", bus.publish(&form)?);
    println!(
        "trace of that chain (one trace: each follow-up is published inside its handler's span):"
    );
    for line in traces.take() {
        println!("  {line}");
    }

    println!("async flow (dispatch: sync and async handlers):");
    let direct = RecordCreated {
        table: "tasks".into(),
        record: 100,
        values: vec![],
    };
    let report = bus.dispatch(&direct).await?;
    println!("  {report}");
    let report = bus
        .dispatch(&RecordDeleted {
            table: "tasks".into(),
            record: 100,
        })
        .await?;
    println!("  {report}");

    let store = bus.resource::<Store>().expect("provided above");
    println!("audit log:");
    for line in store.audit.lock().unwrap().iter() {
        println!("  {line}");
    }
    let index = bus.resource::<SearchIndex>().expect("provided above");
    let indexed: Vec<String> = index
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(t, r)| format!("{t}/{r}"))
        .collect();
    println!("search index: {}", indexed.join(", "));

    durable::run(&bus, metrics_addr).await
}
