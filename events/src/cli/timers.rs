//! `timers`: the stored timers (due time, how overdue, owner, key, what fires), and their
//! `cancel` and `reschedule`.

use std::io::Write;
use std::time::SystemTime;

use serde::Serialize;

use super::args::{TimerAction, TimersArgs};
use super::output::{age, due_in, json, one_line, rfc3339, short, table, MAX_TEXT};
use super::CliError;
use crate::sink::{TimerTarget, TimerWrite};
use crate::store::durable::{DurableStore, Timer};

/// `timers --json`.
#[derive(Serialize)]
struct TimersJson {
    store: String,
    timers: Vec<TimerJson>,
}

#[derive(Serialize)]
struct TimerJson {
    id: String,
    due_at: String,
    overdue_seconds: f64,
    owner: Option<String>,
    key: Option<String>,
    event: String,
    version: u32,
    aggregate_type: String,
    aggregate_id: String,
    event_id: String,
    correlation_id: String,
    causation_id: Option<String>,
    created_at: String,
    payload: serde_json::Value,
}

/// `timers [--json]`, `timers cancel <id>`, `timers reschedule <id> --at T | --in D`.
pub(super) async fn timers(
    store: &dyn DurableStore,
    args: TimersArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match args.action {
        None => list(store, args.json, out).await,
        Some(TimerAction::Cancel { id }) => {
            let found = store
                .write_timers(&[TimerWrite::Cancel(TimerTarget::Id(id))])
                .await?;
            if found == 0 {
                return Err(no_timer(id));
            }
            writeln!(out, "timer {id} cancelled; it will not fire")?;
            Ok(())
        }
        Some(TimerAction::Reschedule { id, at, r#in }) => {
            let now = SystemTime::now();
            let due = match (at, r#in) {
                (Some(at), _) => at,
                (None, Some(delay)) => now + delay,
                (None, None) => unreachable!("clap requires --at or --in"),
            };
            if !store.reschedule_timer(id, due).await? {
                return Err(no_timer(id));
            }
            writeln!(
                out,
                "timer {id} now due at {} ({}); a running worker fires it then",
                rfc3339(due),
                due_in(due, now)
            )?;
            Ok(())
        }
    }
}

fn no_timer(id: crate::sink::TimerId) -> CliError {
    CliError::Usage(format!(
        "no timer with id {id}: it fired or was cancelled (see `timers`)"
    ))
}

async fn list(
    store: &dyn DurableStore,
    as_json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let timers = store.list_timers(None).await?;
    let now = SystemTime::now();
    if as_json {
        let timers = timers.iter().map(|t| timer_json(t, now)).collect();
        return json(
            out,
            &TimersJson {
                store: store.location(),
                timers,
            },
        );
    }
    if timers.is_empty() {
        writeln!(out, "no timers")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = timers
        .iter()
        .map(|t| {
            let overdue = if t.due_at <= now {
                short(age(t.due_at, now))
            } else {
                due_in(t.due_at, now)
            };
            vec![
                t.id.to_string(),
                rfc3339(t.due_at),
                overdue,
                one_line(t.owner.as_deref().unwrap_or("-"), MAX_TEXT),
                one_line(t.key.as_deref().unwrap_or("-"), MAX_TEXT),
                one_line(&what_fires(t), MAX_TEXT),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        table(&["ID", "DUE", "OVERDUE BY", "OWNER", "KEY", "EVENT"], &rows)
    )?;
    Ok(())
}

/// `PaymentTimedOut Order/o-1` (the stream it goes to), or the name alone.
fn what_fires(t: &Timer) -> String {
    if t.aggregate_id.is_empty() {
        t.event.clone()
    } else {
        format!("{} {}/{}", t.event, t.aggregate_type, t.aggregate_id)
    }
}

fn timer_json(t: &Timer, now: SystemTime) -> TimerJson {
    TimerJson {
        id: t.id.to_string(),
        due_at: rfc3339(t.due_at),
        overdue_seconds: age(t.due_at, now).as_secs_f64(),
        owner: t.owner.clone(),
        key: t.key.clone(),
        event: t.event.clone(),
        version: t.version,
        aggregate_type: t.aggregate_type.clone(),
        aggregate_id: t.aggregate_id.clone(),
        event_id: t.event_id.to_string(),
        correlation_id: t.correlation_id.to_string(),
        causation_id: t.causation_id.map(|c| c.to_string()),
        created_at: rfc3339(t.created_at),
        payload: t.payload.clone(),
    }
}
