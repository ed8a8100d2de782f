//! `dead-letters`: dead letters and scheduled retries with their attempts, age, next attempt
//! and last error; one line each in the table, in full in JSON and in the detail of one
//! handler (`--handler`).

use std::fmt::Write as _;
use std::io::Write;
use std::time::SystemTime;

use serde::Serialize;

#[cfg(feature = "dashboard")]
use super::log::EventJson;
use super::output::{age, due_in, json, one_line, rfc3339, short, table, MAX_TEXT};
use super::CliError;
#[cfg(feature = "dashboard")]
use crate::process::commands_sent_for;
#[cfg(feature = "dashboard")]
use crate::store::durable::LogQuery;
use crate::store::durable::{DurableStore, FailureStatus, PendingFailure};

/// `dead-letters --json`.
#[derive(Serialize)]
struct DeadLettersJson {
    store: String,
    failures: Vec<FailureJson>,
}

#[derive(Serialize)]
struct FailureJson {
    id: i64,
    handler: String,
    status: &'static str,
    position: u64,
    aggregate: String,
    attempts: u32,
    held_behind: usize,
    occurred_at: String,
    last_attempt_at: String,
    next_attempt_at: Option<String>,
    last_error: Option<String>,
}

/// One dead letter in full (the dashboard's detail, `GET /api/dead-letters/{id}`): the
/// failure, the failures of its aggregate held behind it, and its event.
#[cfg(feature = "dashboard")]
#[derive(Serialize)]
struct DeadLetterJson<'a> {
    store: String,
    failure: FailureJson,
    held: Vec<FailureJson>,
    event: Option<EventJson<'a>>,
}

/// A dead letter or retry, with the number of events of its aggregate held behind it.
struct Entry<'a> {
    failure: &'a PendingFailure,
    held_behind: usize,
}

/// `dead-letters [--handler H] [--json]`.
pub(super) async fn dead_letters(
    store: &dyn DurableStore,
    handler: Option<&str>,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let failures = store.failures(handler).await?;
    let entries: Vec<Entry<'_>> = failures
        .iter()
        .filter(|f| f.status != FailureStatus::Held)
        .map(|f| Entry {
            failure: f,
            held_behind: held_behind(&failures, f).count(),
        })
        .collect();
    let now = SystemTime::now();
    if as_json {
        let failures = entries.iter().map(failure_json).collect();
        return json(
            out,
            &DeadLettersJson {
                store: store.location(),
                failures,
            },
        );
    }
    if entries.is_empty() {
        writeln!(out, "no dead letters or retries")?;
        return Ok(());
    }
    let text = match handler {
        Some(_) => detail(&entries, now),
        None => summary(&entries, now),
    };
    write!(out, "{text}")?;
    Ok(())
}

/// The failures of `f`'s handler and aggregate after it: the events it holds back.
fn held_behind<'a>(
    failures: &'a [PendingFailure],
    f: &'a PendingFailure,
) -> impl Iterator<Item = &'a PendingFailure> {
    failures
        .iter()
        .filter(|g| g.handler == f.handler && g.aggregate == f.aggregate && g.position > f.position)
}

#[cfg(feature = "dashboard")]
/// The dead letter or retry `id` in full as JSON: the failure, the failures held behind it
/// and its stored event; an error naming `dead-letters` when there is none.
pub(super) async fn dead_letter_json(
    store: &dyn DurableStore,
    id: i64,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let failures = store.failures(None).await?;
    let Some(f) = failures
        .iter()
        .find(|f| f.id == id && f.status != FailureStatus::Held)
    else {
        return Err(CliError::Usage(format!(
            "no dead letter or retry with id {id}; see `dead-letters` for the ids"
        )));
    };
    let held: Vec<&PendingFailure> = held_behind(&failures, f).collect();
    let events = store
        .query_log(&LogQuery {
            from: f.position,
            to: Some(f.position),
            limit: Some(1),
            ..LogQuery::default()
        })
        .await?;
    let commands = commands_sent_for(events.iter().map(|e| (e.name.as_str(), e.event_id)));
    let entry = |failure, held_behind| {
        failure_json(&Entry {
            failure,
            held_behind,
        })
    };
    json(
        out,
        &DeadLetterJson {
            store: store.location(),
            failure: entry(f, held.len()),
            held: held.iter().map(|g| entry(g, 0)).collect(),
            event: events.first().map(|e| EventJson::of(e, &commands)),
        },
    )
}

fn failure_json(e: &Entry<'_>) -> FailureJson {
    let f = e.failure;
    FailureJson {
        id: f.id,
        handler: f.handler.clone(),
        status: f.status.as_str(),
        position: f.position,
        aggregate: f.aggregate.clone(),
        attempts: f.attempts,
        held_behind: e.held_behind,
        occurred_at: rfc3339(f.occurred_at),
        last_attempt_at: rfc3339(f.updated_at),
        next_attempt_at: f.next_attempt_at.map(rfc3339),
        last_error: f.last_error.clone(),
    }
}

/// What comes next for a failure: its retry time, or what an operator can do.
fn next(f: &PendingFailure, now: SystemTime) -> String {
    match (f.status, f.next_attempt_at) {
        (FailureStatus::Retrying, Some(at)) => due_in(at, now),
        _ => "-".to_owned(),
    }
}

/// One line per failure.
fn summary(entries: &[Entry<'_>], now: SystemTime) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let f = e.failure;
            vec![
                f.id.to_string(),
                f.handler.clone(),
                f.status.as_str().to_owned(),
                f.position.to_string(),
                one_line(&f.aggregate, MAX_TEXT),
                f.attempts.to_string(),
                e.held_behind.to_string(),
                short(age(f.occurred_at, now)),
                format!("{} ago", short(age(f.updated_at, now))),
                next(f, now),
                one_line(f.last_error.as_deref().unwrap_or("-"), MAX_TEXT),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "HANDLER",
            "STATUS",
            "POSITION",
            "AGGREGATE",
            "ATTEMPTS",
            "HELD",
            "AGE",
            "LAST ATTEMPT",
            "NEXT ATTEMPT",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// Every failure of one handler in full: times and the whole error text.
fn detail(entries: &[Entry<'_>], now: SystemTime) -> String {
    let mut out = String::new();
    for e in entries {
        let f = e.failure;
        let _ = writeln!(
            out,
            "{} {}: {} at position {}, aggregate {}",
            f.status.as_str(),
            f.id,
            f.handler,
            f.position,
            f.aggregate
        );
        let _ = writeln!(
            out,
            "  attempts: {}; events of its aggregate held behind it: {}",
            f.attempts, e.held_behind
        );
        let _ = writeln!(
            out,
            "  event occurred: {} ({} ago)",
            rfc3339(f.occurred_at),
            short(age(f.occurred_at, now))
        );
        let _ = writeln!(
            out,
            "  last attempt: {} ({} ago)",
            rfc3339(f.updated_at),
            short(age(f.updated_at, now))
        );
        let _ = match f.next_attempt_at {
            Some(at) if f.status == FailureStatus::Retrying => {
                writeln!(out, "  next attempt: {} ({})", rfc3339(at), due_in(at, now))
            }
            _ => writeln!(
                out,
                "  next attempt: none; `retry {}` schedules one, `drop {}` skips the event",
                f.id, f.id
            ),
        };
        let _ = writeln!(out, "  last error:");
        for line in f.last_error.as_deref().unwrap_or("-").lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}
