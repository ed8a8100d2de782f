//! `log`: the stored events, filtered by aggregate, correlation (a whole chain, in causal
//! order), name and position range, as a table or JSON.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::Write;

use serde::Serialize;
use uuid::Uuid;

use super::args::LogArgs;
use super::output::{json, one_line, rfc3339, table, MAX_TEXT};
use super::CliError;
use crate::process::{commands_sent_for, CommandOrigin};
use crate::store::durable::{DurableStore, LogQuery};
use crate::store::StoredEvent;

/// `log --json`.
#[derive(Serialize)]
struct LogJson<'a> {
    store: String,
    events: Vec<EventJson<'a>>,
    more: bool,
}

/// One stored event as `log --json` (and the dashboard) shows it.
#[derive(Serialize)]
pub(super) struct EventJson<'a> {
    position: u64,
    event_id: Uuid,
    name: &'a str,
    version: u32,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: u64,
    occurred_at: String,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    /// When its cause is a process manager's command: which, and after which event.
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<CommandOrigin>,
    fields: &'a BTreeMap<String, String>,
    payload: &'a serde_json::Value,
}

impl<'a> EventJson<'a> {
    pub(super) fn of(e: &'a StoredEvent, commands: &HashMap<Uuid, CommandOrigin>) -> Self {
        Self {
            position: e.position,
            event_id: e.event_id,
            name: &e.name,
            version: e.version,
            aggregate_type: &e.aggregate_type,
            aggregate_id: &e.aggregate_id,
            sequence: e.sequence,
            occurred_at: rfc3339(e.occurred_at),
            correlation_id: e.metadata.correlation_id.unwrap_or(e.event_id),
            causation_id: e.metadata.causation_id,
            command: e
                .metadata
                .causation_id
                .and_then(|c| commands.get(&c).cloned()),
            fields: &e.metadata.fields,
            payload: &e.payload,
        }
    }
}

/// The store query `log`'s arguments ask for (one more than `--limit`, to tell whether the
/// limit cut the list).
fn query(args: &LogArgs) -> Result<LogQuery, CliError> {
    let aggregate = match &args.aggregate {
        Some(key) => match key.split_once('/') {
            Some((t, id)) if !t.is_empty() && !id.is_empty() => Some((t.to_owned(), id.to_owned())),
            _ => {
                return Err(CliError::Usage(format!(
                    "--aggregate `{key}` is not `Type/id`; write it as `dead-letters` shows it, e.g. `--aggregate Customer/42`"
                )))
            }
        },
        None => None,
    };
    if let Some(to) = args.to.filter(|to| *to < args.from) {
        return Err(CliError::Usage(format!(
            "--to {to} is before --from {}; give a range from a lower to a higher position",
            args.from
        )));
    }
    Ok(LogQuery {
        aggregate,
        correlation: args.correlation,
        name: args.name.clone(),
        from: args.from,
        to: args.to,
        limit: Some(args.limit.saturating_add(1)),
    })
}

/// `log`.
pub(super) async fn log(
    store: &dyn DurableStore,
    args: &LogArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let mut events = store.query_log(&query(args)?).await?;
    let more = events.len() > args.limit;
    events.truncate(args.limit);
    let commands = commands_sent_for(events.iter().map(|e| (e.name.as_str(), e.event_id)));
    if args.correlation.is_some() {
        events = causal_order(events, &commands);
    }
    if more {
        eprintln!(
            "showing the first {} events; more match: raise --limit or narrow with --from/--to",
            args.limit
        );
    }
    if args.json {
        return json(
            out,
            &LogJson {
                store: store.location(),
                events: events.iter().map(|e| EventJson::of(e, &commands)).collect(),
                more,
            },
        );
    }
    if events.is_empty() {
        writeln!(out, "no events match")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.position.to_string(),
                rfc3339(e.occurred_at),
                e.name.clone(),
                one_line(
                    &format!("{}/{}", e.aggregate_type, e.aggregate_id),
                    MAX_TEXT,
                ),
                e.sequence.to_string(),
                e.event_id.to_string(),
                caused_by(e, &commands),
                one_line(&e.payload.to_string(), MAX_TEXT),
            ]
        })
        .collect();
    let header = [
        "POSITION",
        "OCCURRED AT",
        "NAME",
        "AGGREGATE",
        "SEQ",
        "EVENT ID",
        "CAUSED BY",
        "PAYLOAD",
    ];
    write!(out, "{}", table(&header, &rows))?;
    Ok(())
}

/// The CAUSED BY column: the causing event or command; a process manager's command is shown
/// with the process, its reaction and the event it reacted to.
fn caused_by(e: &StoredEvent, commands: &HashMap<Uuid, CommandOrigin>) -> String {
    match e.metadata.causation_id {
        None => "-".into(),
        Some(id) => match commands.get(&id) {
            Some(c) => format!(
                "command {id} sent by {} ({}#{}) after {}",
                c.process, c.reaction, c.index, c.cause
            ),
            None => id.to_string(),
        },
    }
}

/// `events` (in position order) reordered so that each event comes after the event that
/// caused it (through a process manager's command in `commands`, too), when that one is in
/// the list; otherwise position order.
fn causal_order(
    events: Vec<StoredEvent>,
    commands: &HashMap<Uuid, CommandOrigin>,
) -> Vec<StoredEvent> {
    let index: HashMap<Uuid, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id, i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    let mut ready = BinaryHeap::new();
    for (i, e) in events.iter().enumerate() {
        let cause = e
            .metadata
            .causation_id
            .map(|c| commands.get(&c).map_or(c, |command| command.cause));
        match cause.and_then(|c| index.get(&c)) {
            Some(&cause) if cause != i => children[cause].push(i),
            _ => ready.push(Reverse((e.position, i))),
        }
    }
    let mut order = Vec::with_capacity(events.len());
    while let Some(Reverse((_, i))) = ready.pop() {
        order.push(i);
        for &child in &children[i] {
            ready.push(Reverse((events[child].position, child)));
        }
    }
    let mut slots: Vec<Option<StoredEvent>> = events.into_iter().map(Some).collect();
    let mut ordered: Vec<StoredEvent> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    // Events in a cycle of causes (only a corrupt log has one) follow in position order
    // rather than go missing.
    ordered.extend(slots.into_iter().flatten());
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventMetadata;

    fn event(position: u64, id: u128, cause: Option<u128>) -> StoredEvent {
        StoredEvent {
            position,
            event_id: Uuid::from_u128(id),
            name: "e".into(),
            version: 1,
            aggregate_type: "A".into(),
            aggregate_id: "1".into(),
            sequence: position,
            payload: serde_json::Value::Null,
            metadata: EventMetadata {
                correlation_id: Some(Uuid::from_u128(1)),
                causation_id: cause.map(Uuid::from_u128),
                ..EventMetadata::default()
            },
            occurred_at: std::time::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_chain_is_told_cause_first_whatever_the_positions() {
        // 3 was caused by 4 (say, written by another writer that committed later).
        let events = vec![
            event(1, 1, None),
            event(2, 2, Some(1)),
            event(3, 3, Some(4)),
            event(4, 4, Some(1)),
        ];
        let order: Vec<u64> = causal_order(events, &HashMap::new())
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(order, [1, 2, 4, 3]);
    }
}
