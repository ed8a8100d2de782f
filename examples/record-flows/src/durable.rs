//! The durable path: record updates are stored in SQLite and a worker delivers them to durable
//! handlers, with retries and exponential back-off, dead letters, per-record hold-back, a
//! batched handler, and two schema versions of one event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use events::store::{DurableStore, EventMetadata, EventStore, NewEvent, SqliteStore, StreamId};
use events::worker::{FailureStatus, Summary, Worker};
use events::{event_handler, BoxError, Bus, DomainEvent, Meta, Res};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A record's fields changed. Version 1 carried one `field` and its `value`; version 2 carries a
/// list of changes. Version 1 rows still in the store are upcast when they are read.
#[derive(DomainEvent, Serialize, Deserialize, Debug, Clone)]
#[event(
    name = "tables.record_updated",
    version = 2,
    aggregate = "Record",
    upcast = record_updated_v1
)]
struct RecordUpdated {
    #[event(aggregate_id)]
    record: u64,
    changes: Vec<(String, String)>,
}

/// V1 `{record, field, value}` -> V2 `{record, changes: [[field, value]]}`.
fn record_updated_v1(from_version: u32, mut payload: Value) -> Result<Value, BoxError> {
    let (Some(field), Some(value)) = (payload["field"].as_str(), payload["value"].as_str()) else {
        return Err(format!("v{from_version} payload without `field` and `value`").into());
    };
    let changes = json!([[field, value]]);
    payload["changes"] = changes;
    Ok(payload)
}

/// The CRM the webhook posts to: it rejects fields it does not know, and malformed emails.
pub struct Crm {
    fields: Mutex<Vec<&'static str>>,
    /// Attempts per idempotency key (the event id).
    attempts: Mutex<HashMap<String, u32>>,
}

impl Default for Crm {
    fn default() -> Self {
        Self {
            fields: Mutex::new(vec!["email", "name", "status"]),
            attempts: Mutex::default(),
        }
    }
}

impl Crm {
    fn post(&self, key: String, e: &RecordUpdated) -> (u32, Result<(), String>) {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(key).or_default();
            *n += 1;
            *n
        };
        let fields = self.fields.lock().unwrap();
        for (field, value) in &e.changes {
            let record = e.record;
            if !fields.contains(&field.as_str()) {
                let err = format!("CRM rejected record {record}: unknown field `{field}`");
                return (attempt, Err(err));
            }
            if field == "email" && !value.contains('@') {
                let err = format!("CRM rejected record {record}: invalid email `{value}`");
                return (attempt, Err(err));
            }
        }
        (attempt, Ok(()))
    }
}

// Batched: the search index takes every pending update in one call.
#[event_handler(durable, name = "search.reindex_records")]
fn reindex_records(updates: &[RecordUpdated]) {
    let records: Vec<String> = updates.iter().map(|u| u.record.to_string()).collect();
    println!(
        "  search: reindexed records {} in one call",
        records.join(", ")
    );
}

// Queued asynchronous, retried with back-off (5, 10 ms...), dead-lettered after 3 attempts.
// It takes V1 rows and V2 events alike: both arrive as V2. The event id (from the envelope,
// `Meta`) is the idempotency key the CRM counts attempts by.
#[event_handler(
    durable,
    name = "webhooks.record_updated",
    max_attempts = 3,
    backoff_ms = 5
)]
async fn post_to_crm(e: &RecordUpdated, crm: Res<Crm>, meta: Meta) -> Result<(), String> {
    tokio::task::yield_now().await; // the HTTP call
    let (attempt, result) = crm.post(meta.event_id().to_string(), e);
    match &result {
        Ok(()) => {
            let changes: Vec<_> = e.changes.iter().map(|(f, v)| format!("{f}={v}")).collect();
            let (record, changes) = (e.record, changes.join(" "));
            println!("  webhook: record {record} {changes} accepted (attempt {attempt})");
        }
        Err(err) => println!("  webhook: {err} (attempt {attempt})"),
    }
    result
}

const HANDLERS: [&str; 2] = ["search.reindex_records", "webhooks.record_updated"];

pub async fn run(bus: &Bus, metrics_addr: Option<SocketAddr>) -> Result<(), BoxError> {
    let store = SqliteStore::open_in_memory()?;

    // A V1 row, as the previous release of the engine wrote it.
    let mut v1 = NewEvent::new(
        &RecordUpdated {
            record: 1,
            changes: vec![],
        },
        EventMetadata::default(),
    )?;
    v1.version = 1;
    v1.payload = json!({ "record": 1, "field": "email", "value": "ada@example.com" });
    let record_1 = StreamId {
        aggregate_type: "Record",
        aggregate_id: "1",
    };
    store.transaction(|tx| SqliteStore::append_in(tx, record_1.at(0), vec![v1]))?;
    for (record, field, value) in [
        (2, "phone", "555-0100"), // the CRM does not know `phone` yet
        (3, "email", "grace@example.com"),
        (2, "email", "bob@example.com"), // held back behind record 2's failure
        (4, "email", "not-an-email"),    // rejected for good
        (4, "name", "Spam"),             // held back behind record 4's failure
        (1, "status", "customer"),
    ] {
        let changes = vec![(field.to_owned(), value.to_owned())];
        store.append_event(&RecordUpdated { record, changes }, EventMetadata::default())?;
    }

    println!("durable path (SQLite store in memory, a worker, two durable handlers):");
    println!("event log (SQLite; position 1 is a V1 row from the previous release):");
    for e in EventStore::read_all(&store, 0, 100).await? {
        println!(
            "  {} {} v{} {}/{} {}",
            e.position, e.name, e.version, e.aggregate_type, e.aggregate_id, e.payload
        );
        let at = humantime::format_rfc3339_millis(e.occurred_at);
        println!("    event id {}, occurred at {at}", e.event_id);
    }

    println!("worker, first run:");
    let summary = drain(bus, &store).await?;
    indent(&summary.to_string());
    println!("status:");
    cli(bus, &store, "status").await?;

    println!("dead letters (each holds back the later updates of its record):");
    for f in store.failures(Some("webhooks.record_updated")).await? {
        let error = f.last_error.unwrap_or_default();
        match f.status {
            FailureStatus::Dead => println!(
                "  dead #{} position {} {}, {} attempts: {error}",
                f.id, f.position, f.aggregate, f.attempts
            ),
            _ => println!("    held position {} {}", f.position, f.aggregate),
        }
    }

    println!("operator: the CRM learns `phone`, record 2 is retried, record 4's email dropped:");
    let crm = bus.resource::<Crm>().expect("provided by main");
    crm.fields.lock().unwrap().push("phone");
    let failures = store.failures(None).await?;
    for dead in failures.iter().filter(|f| f.status == FailureStatus::Dead) {
        if dead.aggregate == "Record/2" {
            store.retry_dead_letters(Some(dead.id), None).await?;
            println!(
                "  retry #{}: attempted again now, then what it held",
                dead.id
            );
        } else {
            store.drop_dead_letter(dead.id).await?;
            println!(
                "  drop #{}: skipped for good, what it held is released",
                dead.id
            );
        }
    }
    println!("worker, second run:");
    let summary = drain(bus, &store).await?;
    indent(&summary.to_string());
    println!("status:");
    cli(bus, &store, "status").await?;
    println!("graph (Mermaid):");
    cli(bus, &store, "graph").await?;
    match metrics_addr {
        Some(addr) => crate::metrics::print_scrape(addr, &store).await,
        None => Ok(()),
    }
}

/// Runs the worker until nothing is left to retry (retries fall due milliseconds later).
async fn drain(bus: &Bus, store: &SqliteStore) -> Result<Summary, BoxError> {
    let mut total = Summary::default();
    loop {
        let run = Worker::new(bus, store).handlers(HANDLERS).drain().await?;
        for (name, s) in run.handlers {
            let t = total.handlers.entry(name).or_default();
            t.delivered += s.delivered;
            t.failed += s.failed;
            t.dead_lettered += s.dead_lettered;
            t.held += s.held;
        }
        let failures = store.failures(None).await?;
        if !failures.iter().any(|f| f.status == FailureStatus::Retrying) {
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs a command of the operator CLI (`events::cli`), as `record-flows <command>` would.
async fn cli(bus: &Bus, store: &SqliteStore, command: &str) -> Result<(), BoxError> {
    let mut out = Vec::new();
    events::cli::run_with(bus, store, ["record-flows", command], &mut out).await?;
    indent(&String::from_utf8(out)?);
    Ok(())
}

fn indent(text: &str) {
    for line in text.lines() {
        println!("  {line}");
    }
}
